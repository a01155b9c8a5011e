// Package pgp opens and makes the OpenPGP messages that carry YubiKey key
// batches between a key generator and a YK-KSM: a YKKSM-KEYPROV file signed
// by the generator and encrypted to the KSM.
//
// Two ways to open a message give the same Result:
//
//   - Native decrypts and verifies in process with
//     github.com/ProtonMail/go-crypto (its openpgp/v2 API) against a Keyring
//     read from exported key files (gpg --export, gpg --export-secret-keys;
//     armored or binary). Every key in the keyring is trusted to sign: put in
//     it only the KSM's own secret key and the public keys of the generators
//     whose batches you accept.
//   - GPG runs the gpg binary, as the original Perl ykksm-import did, for keys
//     that live only in gpg-agent or on a smartcard. Every key in GNUPGHOME's
//     public keyring is trusted to sign, whatever its owner trust.
//
// Security rules both follow:
//
//   - A message is accepted only with a verified signature by a known key.
//     Unsigned messages, unknown signers, bad or expired signatures and
//     revoked keys are refused.
//   - The whole plaintext is read and buffered, and the signature and the
//     integrity check are judged only at its end: a damaged message can
//     decrypt to all of its plaintext and still fail. On any error Decrypt
//     returns no plaintext at all.
//   - Like the original, encryption is not required: a message that is only
//     signed (gpg --sign) is accepted, with Result.Encrypted false so the
//     caller can warn. Clear-signed text is not accepted.
//   - Key IDs and fingerprints are upper-case hex, as gpg prints them. The
//     signer fingerprint is that of the key that made the signature, a
//     signing subkey's when a subkey signed: the fingerprint gpg reports in
//     VALIDSIG, whose last 8 digits YK-KSM records as a key's creator.
package pgp
