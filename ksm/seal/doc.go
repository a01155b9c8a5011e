// Package seal keeps YK-KSM AES keys sealed at rest: encrypted and
// authenticated under a key-encryption key (KEK) that never sits in the
// database, and bound to the row they belong to, so that a copied database
// without the KEK yields no key and a sealed value moved to another row does
// not open.
//
// # The KEK
//
// A KEK is 32 random bytes. It lives outside the database: in a file
// (--kek-file; raw 32 bytes, 64 hex digits or base64, detected), in an
// environment variable (base64 or hex), or in a systemd credential
// ($CREDENTIALS_DIRECTORY/ykksm-kek, which is a file too). [ReadKEKFile]
// refuses a file that its group or others may read, except under the
// directory systemd keeps credentials in. [GenerateKEK] makes a new one.
//
// Two keys are derived from the KEK with HKDF-SHA-256, each under its own
// label, so neither can stand in for the other:
//
//   - the AES-256-GCM key that seals, and
//   - the key ID (kid): 4 bytes, written as 8 lower-case hex digits, that
//     names the KEK in every value it sealed. The kid tells which KEK sealed
//     a row (so a KEK rotation can hold two KEKs), and lets a server refuse
//     to start with a KEK that sealed none of the rows. It reveals nothing
//     useful about the KEK.
//
// # The sealed value
//
// A sealed aeskey is self-describing ASCII text:
//
//	$yks1$<kid>$<base64url(nonce ‖ ciphertext ‖ tag)>
//
// "yks1" is the format version. The nonce is 96 random bits (AES-GCM with
// random nonces is safe for 2³² seals under one KEK; a KSM seals each key
// once per rotation), the ciphertext is the aeskey column's text exactly as
// it was stored (32 hex digits, normally), and the tag is GCM's 128 bits.
// Base64url has no '$', and a plaintext key is hex, which has none either,
// so a value starting with '$' is sealed and anything else non-empty is a
// plaintext key. A sealed 32-digit key is 95 characters, which is why a
// sealed database needs an aeskey column wider than Yubico's varchar(32):
// [ColumnWidth] characters.
//
// The additional data authenticated with every value is the format tag, the
// kid, the row's public name (publicname) and its private ID (internalname,
// in lower case), each length-prefixed. A value copied to another public
// ID, or a row whose internalname was edited, therefore fails to open: an
// attacker who can write the database can neither move a known key to
// another YubiKey nor pair a key with another UID. Fields that choose no key
// (serial number, dates, creator, active) are not bound.
//
// There is no per-key data-encryption key: the sealed secret is itself a
// 16-byte key, so wrapping it directly costs the same as wrapping a DEK,
// and rotating the KEK re-seals each row once.
//
// # Failing closed
//
// [Sealer.Open] returns an error wrapping [ErrOpen] for a wrong KEK or a
// moved or edited row, [ErrUnknownKEK] for a kid it holds no KEK for, and
// [ErrFormat] for a value that is not a sealed value at all. None of these
// errors quotes key material. Callers must treat every error as "no key".
package seal
