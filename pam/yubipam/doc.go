// Package yubipam holds every decision of ykstack's pam_yubico module in pure
// Go: the module arguments, the token mapping files, LDAP mapping, and the
// authentication flow with the return code of every case, compatible with
// Yubico's pam_yubico (client mode).
//
// The PAM side is reached only through the Transaction interface, so the
// whole flow is tested with a fake transaction. The real module is a small C
// PAM module (pam/module) that runs the helper executable
// (cmd/pam_yubico_helper) for each authentication and relays the
// conversation and PAM items over a socket (package pam/helper); the helper
// calls Authenticate. No Go code ever runs inside the PAM application, so a
// host that forks after authentication started (sshd's keyboard-interactive
// child) cannot deadlock a Go runtime.
//
// Authenticate follows the original's order:
//
//  1. parse the arguments; token_id_length above 16 is PAM_AUTHINFO_UNAVAIL;
//  2. get the user (its error code is returned as is);
//  3. with try_first_pass or use_first_pass read PAM_AUTHTOK (use_first_pass
//     without one is PAM_AUTH_ERR);
//  4. check the validation-server settings (more than 10 urllist entries,
//     an unusable url template or key_file: PAM_AUTHINFO_UNAVAIL);
//  5. unless always_prompt, check that the user has tokens at all, before
//     any prompt (none: PAM_USER_UNKNOWN, or PAM_IGNORE with nullok; lookup
//     failure: PAM_AUTHINFO_UNAVAIL);
//  6. prompt "YubiKey for `user': " (echo off, echo on with verbose_otp);
//  7. split password and OTP (the password goes to PAM_AUTHTOK);
//  8. check that the OTP's public ID is listed for the user (not listed:
//     PAM_AUTH_ERR and no server is asked);
//  9. verify the OTP with the validation servers (OK: PAM_SUCCESS;
//     BAD_OTP, REPLAYED_OTP: PAM_AUTH_ERR; anything else:
//     PAM_AUTHINFO_UNAVAIL);
//  10. alwaysok turns any failure into PAM_SUCCESS.
//
// Security: the API key, the LDAP bind password, typed passwords and full
// OTPs are never logged, not even with debug; the debug file must exist, be
// a regular file and not a symbolic link; every file is opened close-on-exec
// and closed on every path (CVE-2018-9275); LDAP filter values are escaped
// (RFC 4515); the per-user file is read with the user's file-system
// identity. Put the API key in a key_file readable only by root rather than
// on the world-readable PAM configuration line.
package yubipam
