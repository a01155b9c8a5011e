/*
 * The rejected design, for TestDesignLazyGo: a C PAM module that loads a Go
 * c-shared library lazily (dlopen in pam_sm_authenticate) and calls it.
 * It prompts "code: " and succeeds for the answer "good".
 */
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>
#include <security/pam_ext.h>
#include <security/pam_modules.h>

PAM_EXTERN int pam_sm_authenticate(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	char *resp = NULL;
	(void)flags;
	if (argc < 1 || pam_prompt(pamh, PAM_PROMPT_ECHO_OFF, &resp, "code: ") != PAM_SUCCESS || !resp)
		return PAM_AUTH_ERR;
	void *h = dlopen(argv[0], RTLD_NOW | RTLD_LOCAL);
	int (*f)(void) = h ? (int (*)(void))dlsym(h, "go_authenticate") : NULL;
	int ok = f && f() == 0 && strcmp(resp, "good") == 0;
	free(resp);
	return ok ? PAM_SUCCESS : PAM_AUTH_ERR;
}

PAM_EXTERN int pam_sm_setcred(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	(void)pamh, (void)flags, (void)argc, (void)argv;
	return PAM_SUCCESS;
}
