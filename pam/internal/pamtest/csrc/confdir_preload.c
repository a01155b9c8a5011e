/*
 * Test helper, preloaded into sshd (LD_PRELOAD): pam_start reads its
 * service file from the directory in $YKPAM_TEST_PAM_CONFDIR instead of
 * /etc/pam.d, through Linux-PAM's own pam_start_confdir (Linux-PAM >= 1.4).
 * The tests never touch the system's PAM configuration, and, unlike
 * pam_wrapper, nothing is copied per process, so any number of sshd
 * processes can authenticate at once.
 */
#include <stdlib.h>
#include <security/pam_appl.h>

int pam_start(const char *service, const char *user, const struct pam_conv *conv, pam_handle_t **pamh)
{
	return pam_start_confdir(service, user, conv, getenv("YKPAM_TEST_PAM_CONFDIR"), pamh);
}
