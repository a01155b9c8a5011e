-- YK-KSM key table, as in Yubico's ykksm-db.sql (SQLite).
CREATE TABLE IF NOT EXISTS yubikeys (
  serialnr int NOT NULL,
  publicname varchar(16) UNIQUE NOT NULL,
  created varchar(24) NOT NULL,
  internalname varchar(12) NOT NULL,
  aeskey varchar(32) NOT NULL,
  lockcode varchar(12) NOT NULL,
  creator varchar(8) NOT NULL,
  active boolean DEFAULT true,
  hardware boolean DEFAULT true,
  PRIMARY KEY (publicname)
);
