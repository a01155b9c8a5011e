/*
 * Test helper PAM module: "auth optional pam_ykpam_settok.so VALUE" sets
 * PAM_AUTHTOK to VALUE (no argument: leaves it unset), as a password module
 * before pam_yubico would. Its other functions do nothing.
 */
#define PAM_SM_AUTH
#include <security/pam_modules.h>

PAM_EXTERN int pam_sm_authenticate(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	(void)flags;
	if (argc < 1)
		return PAM_IGNORE;
	return pam_set_item(pamh, PAM_AUTHTOK, argv[0]);
}

PAM_EXTERN int pam_sm_setcred(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	(void)pamh, (void)flags, (void)argc, (void)argv;
	return PAM_IGNORE;
}
