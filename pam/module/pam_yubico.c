/*
 * pam_yubico.so - ykstack's YubiKey OTP PAM module (the C half).
 *
 * This small module never runs Go code inside the PAM application. For each
 * pam_sm_authenticate it starts the helper executable (pam_yubico_helper,
 * written in Go) with posix_spawn, hands it the module arguments over a
 * private socket pair, and then serves the helper's requests - the user name,
 * PAM items, conversation prompts, log lines - until the helper reports the
 * PAM code to return. All decisions are the helper's (package pam/yubipam).
 *
 * Why a helper process and not a Go shared library: a Go runtime started in
 * a process that later forks (sshd's privileged monitor forks the PAM child
 * of keyboard-interactive authentication) deadlocks in the child. With a
 * helper, every authentication gets a fresh process, whatever the host did.
 *
 * The helper gets a clean environment, no inherited descriptors except the
 * socket (fd 3), /dev/null as stdin and the host's stdout and stderr (for
 * debug_file=stdout/stderr), and no secrets on its command line. The module
 * waits at most timeout= seconds (default 10) plus a grace period for each
 * answer of the helper outside conversations, then kills it and fails with
 * PAM_AUTHINFO_UNAVAIL, so it cannot hang the application.
 *
 * setcred, open/close_session succeed; chauthtok is PAM_SERVICE_ERR;
 * acct_mgmt succeeds only if pam_sm_authenticate of this module succeeded in
 * the same PAM handle (the original's "yubico_setcred_return" data).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#define PAM_SM_AUTH
#define PAM_SM_ACCOUNT
#define PAM_SM_SESSION
#define PAM_SM_PASSWORD
#include <security/pam_appl.h>
#include <security/pam_ext.h>
#include <security/pam_modules.h>

#ifndef YKPAM_HELPER
#define YKPAM_HELPER "/usr/local/libexec/ykstack/pam_yubico_helper"
#endif

#define DATA_NAME "yubico_setcred_return"
#define DEFAULT_TIMEOUT 10     /* seconds, as yubipam.DefaultTimeout */
#define GRACE_SECONDS 5        /* on top of the helper's own timeout */
#define MAX_MSG (64 * 1024)    /* largest message either side sends */
#define HELPER_FD 3

/* Message types (see pam/helper/wire.go). */
enum {
	MSG_START = 'A',    /* module -> helper: flags, argc, args */
	MSG_USER = 'U',     /* helper -> module: get user */
	MSG_USER_R = 'u',   /* code, user */
	MSG_GET = 'G',      /* item */
	MSG_GET_R = 'g',    /* code, present, value */
	MSG_SET = 'S',      /* item, value */
	MSG_SET_R = 's',    /* code */
	MSG_CONV = 'C',     /* style, text */
	MSG_CONV_R = 'c',   /* code, present, answer */
	MSG_LOG = 'L',      /* priority, text; no answer */
	MSG_RESULT = 'R',   /* code; the end */
};

extern char **environ;

/* ---- a growable message buffer ---- */

struct buf {
	unsigned char *p;
	size_t len, cap, off; /* off: read position */
};

static void buf_wipe(struct buf *b)
{
	if (b->p) {
		explicit_bzero(b->p, b->cap);
		free(b->p);
	}
	memset(b, 0, sizeof(*b));
}

static int buf_grow(struct buf *b, size_t n)
{
	if (b->len + n <= b->cap)
		return 0;
	if (b->len + n > MAX_MSG)
		return -1;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < b->len + n)
		cap *= 2;
	unsigned char *p = malloc(cap);
	if (!p)
		return -1;
	if (b->p) {
		memcpy(p, b->p, b->len);
		explicit_bzero(b->p, b->cap);
		free(b->p);
	}
	b->p = p;
	b->cap = cap;
	return 0;
}

static int put_u32(struct buf *b, uint32_t v)
{
	if (buf_grow(b, 4))
		return -1;
	b->p[b->len++] = v >> 24;
	b->p[b->len++] = v >> 16;
	b->p[b->len++] = v >> 8;
	b->p[b->len++] = v;
	return 0;
}

static int put_byte(struct buf *b, unsigned char c)
{
	if (buf_grow(b, 1))
		return -1;
	b->p[b->len++] = c;
	return 0;
}

static int put_str(struct buf *b, const char *s)
{
	size_t n = s ? strlen(s) : 0;
	if (n > MAX_MSG || put_u32(b, (uint32_t)n) || buf_grow(b, n))
		return -1;
	if (n)
		memcpy(b->p + b->len, s, n);
	b->len += n;
	return 0;
}

static int get_u32(struct buf *b, uint32_t *v)
{
	if (b->len - b->off < 4)
		return -1;
	unsigned char *p = b->p + b->off;
	*v = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
	b->off += 4;
	return 0;
}

/* get_str returns a freshly allocated NUL-terminated copy (caller wipes and frees). */
static int get_str(struct buf *b, char **s)
{
	uint32_t n;
	if (get_u32(b, &n) || b->len - b->off < n)
		return -1;
	if (memchr(b->p + b->off, 0, n))
		return -1; /* no NUL inside a C string */
	*s = malloc(n + 1);
	if (!*s)
		return -1;
	memcpy(*s, b->p + b->off, n);
	(*s)[n] = 0;
	b->off += n;
	return 0;
}

static void free_str(char *s)
{
	if (s) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

/* ---- the socket ---- */

static int write_all(int fd, const unsigned char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* send_msg writes b (type byte and fields) with its length prefix. */
static int send_msg(int fd, struct buf *b)
{
	unsigned char hdr[4] = {b->len >> 24, b->len >> 16, b->len >> 8, b->len};
	return write_all(fd, hdr, 4) || write_all(fd, b->p, b->len) ? -1 : 0;
}

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* read_full reads n bytes before the deadline (monotonic ms); -1 on EOF,
 * error or timeout. */
static int read_full(int fd, unsigned char *p, size_t n, long long deadline)
{
	while (n > 0) {
		long long left = deadline - now_ms();
		if (left <= 0)
			return -1;
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		int r = poll(&pfd, 1, left > INT_MAX ? INT_MAX : (int)left);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (r == 0)
			return -1;
		ssize_t got = read(fd, p, n);
		if (got < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return -1;
		}
		if (got == 0)
			return -1;
		p += got;
		n -= (size_t)got;
	}
	return 0;
}

/* recv_msg reads one message into b (type byte first). */
static int recv_msg(int fd, struct buf *b, long long deadline)
{
	unsigned char hdr[4];
	buf_wipe(b);
	if (read_full(fd, hdr, 4, deadline))
		return -1;
	uint32_t n = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 | (uint32_t)hdr[2] << 8 | hdr[3];
	if (n < 1 || n > MAX_MSG || buf_grow(b, n))
		return -1;
	if (read_full(fd, b->p, n, deadline))
		return -1;
	b->len = n;
	return 0;
}

/* ---- arguments the C half reads itself ---- */

/* scan_uint reads a number like sscanf("%u"): 0 digits leaves *v unchanged. */
static void scan_uint(const char *s, unsigned *v)
{
	char *end;
	while (*s == ' ' || *s == '\t')
		s++;
	errno = 0;
	unsigned long n = strtoul(s, &end, 10);
	if (end != s)
		*v = n > UINT_MAX ? UINT_MAX : (unsigned)n;
}

struct opts {
	const char *helper;
	unsigned timeout;
};

static void parse_opts(int argc, const char **argv, struct opts *o)
{
	o->helper = YKPAM_HELPER;
	o->timeout = 0;
	for (int i = 0; i < argc; i++) {
		if (strncmp(argv[i], "helper=", 7) == 0)
			o->helper = argv[i] + 7;
		else if (strncmp(argv[i], "timeout=", 8) == 0)
			scan_uint(argv[i] + 8, &o->timeout);
	}
	if (o->timeout == 0)
		o->timeout = DEFAULT_TIMEOUT;
}

/* helper_ok refuses a helper anyone but root (or our own user) could replace. */
static int helper_ok(pam_handle_t *pamh, const char *path)
{
	struct stat st;
	if (path[0] != '/') {
		pam_syslog(pamh, LOG_ERR, "helper %s: not an absolute path", path);
		return 0;
	}
	if (stat(path, &st) != 0) {
		pam_syslog(pamh, LOG_ERR, "helper %s: %s", path, strerror(errno));
		return 0;
	}
	if (!S_ISREG(st.st_mode) || (st.st_mode & (S_IWGRP | S_IWOTH)) ||
	    (st.st_uid != 0 && st.st_uid != geteuid()) || !(st.st_mode & S_IXUSR)) {
		pam_syslog(pamh, LOG_ERR, "helper %s: must be an executable regular file "
		           "owned by root and writable by its owner only", path);
		return 0;
	}
	/* Nobody else may replace it either: its directory must not be writable
	 * by group or others, unless sticky (like /tmp). */
	char dir[PATH_MAX];
	size_t n = strlen(path);
	if (n >= sizeof(dir)) {
		pam_syslog(pamh, LOG_ERR, "helper %s: path too long", path);
		return 0;
	}
	memcpy(dir, path, n + 1);
	char *slash = strrchr(dir, '/');
	if (slash == dir)
		slash[1] = 0; /* "/" */
	else
		*slash = 0;
	if (stat(dir, &st) != 0 || ((st.st_mode & (S_IWGRP | S_IWOTH)) && !(st.st_mode & S_ISVTX)) ||
	    (st.st_uid != 0 && st.st_uid != geteuid())) {
		pam_syslog(pamh, LOG_ERR, "helper %s: its directory must be owned by root and "
		           "writable by its owner only", path);
		return 0;
	}
	return 1;
}

/* ---- running the helper ---- */

static pid_t spawn_helper(pam_handle_t *pamh, const char *path, int sock)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t none, all;
	pid_t pid = -1;
	char *argv[] = {(char *)"pam_yubico_helper", NULL};
	char *envp[] = {(char *)"PATH=/usr/sbin:/usr/bin:/sbin:/bin", (char *)"LC_ALL=C", NULL};

	if (posix_spawn_file_actions_init(&fa) != 0)
		return -1;
	if (posix_spawnattr_init(&attr) != 0) {
		posix_spawn_file_actions_destroy(&fa);
		return -1;
	}
	sigemptyset(&none);
	sigfillset(&all);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &all);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

	int ok = posix_spawn_file_actions_adddup2(&fa, sock, HELPER_FD) == 0 &&
	         posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0) == 0;
	/* stdout and stderr are inherited for debug_file=stdout/stderr, unless
	 * the application has them closed: then /dev/null. */
	for (int fd = 1; ok && fd <= 2; fd++)
		if (fcntl(fd, F_GETFD) < 0 || fd == sock)
			ok = posix_spawn_file_actions_addopen(&fa, fd, "/dev/null", O_WRONLY, 0) == 0;
#ifdef __GLIBC__
#if __GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34)
	if (ok)
		ok = posix_spawn_file_actions_addclosefrom_np(&fa, HELPER_FD + 1) == 0;
#endif
#endif
	if (ok) {
		int err = posix_spawn(&pid, path, &fa, &attr, argv, envp);
		if (err != 0) {
			pam_syslog(pamh, LOG_ERR, "cannot start helper %s: %s", path, strerror(err));
			pid = -1;
		}
	}
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	return pid;
}

/* reap waits briefly for the helper to exit, then kills it. The host may
 * reap children itself (a SIGCHLD handler): ECHILD is fine. sock is our end
 * of the socket (or -1): the helper's exit closes its end, which we see as
 * end of file before polling waitpid. */
static void reap(pid_t pid, int sock, int kill_now)
{
	if (kill_now)
		kill(pid, SIGKILL);
	else if (sock >= 0) {
		unsigned char c;
		read_full(sock, &c, 1, now_ms() + 2000); /* returns at EOF */
	}
	for (int i = 0; i < 1000; i++) { /* up to about 1 s */
		pid_t r = waitpid(pid, NULL, WNOHANG);
		if (r == pid || (r < 0 && errno != EINTR))
			return;
		struct timespec ts = {0, 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	kill(pid, SIGKILL);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
}

static int conv_one(pam_handle_t *pamh, int style, const char *text, char **answer)
{
	const struct pam_conv *conv = NULL;
	struct pam_message msg = {.msg_style = style, .msg = text};
	const struct pam_message *msgs[1] = {&msg};
	struct pam_response *resp = NULL;
	*answer = NULL;
	int rc = pam_get_item(pamh, PAM_CONV, (const void **)&conv);
	if (rc != PAM_SUCCESS)
		return rc;
	if (!conv || !conv->conv)
		return PAM_CONV_ERR;
	rc = conv->conv(1, msgs, &resp, conv->appdata_ptr);
	if (rc != PAM_SUCCESS) {
		if (resp) {
			free_str(resp->resp);
			free(resp);
		}
		return rc;
	}
	if (resp) {
		*answer = resp->resp; /* may be NULL */
		free(resp);
	}
	return PAM_SUCCESS;
}

static int item_allowed(uint32_t item, int set)
{
	if (set)
		return item == PAM_AUTHTOK;
	return item == PAM_AUTHTOK || item == PAM_SERVICE || item == PAM_RHOST || item == PAM_TTY ||
	       item == PAM_RUSER;
}

/* serve answers one request; returns 1 when the helper reported its result. */
static int serve(pam_handle_t *pamh, int sock, struct buf *in, int *result)
{
	struct buf out = {0};
	uint32_t v1, v2;
	char *s = NULL;
	int rc, err = 0, done = 0;
	unsigned char type = in->p[0];
	in->off = 1;

	switch (type) {
	case MSG_USER: {
		const char *user = NULL;
		rc = pam_get_user(pamh, &user, NULL);
		err = put_byte(&out, MSG_USER_R) || put_u32(&out, (uint32_t)rc) ||
		      put_str(&out, rc == PAM_SUCCESS ? user : NULL);
		break;
	}
	case MSG_GET: {
		const void *item = NULL;
		if (get_u32(in, &v1))
			return -1;
		rc = item_allowed(v1, 0) ? pam_get_item(pamh, (int)v1, &item) : PAM_BAD_ITEM;
		if (rc != PAM_SUCCESS)
			item = NULL;
		err = put_byte(&out, MSG_GET_R) || put_u32(&out, (uint32_t)rc) ||
		      put_u32(&out, item != NULL) || put_str(&out, item);
		break;
	}
	case MSG_SET:
		if (get_u32(in, &v1) || get_str(in, &s))
			return -1;
		rc = item_allowed(v1, 1) ? pam_set_item(pamh, (int)v1, s) : PAM_BAD_ITEM;
		free_str(s);
		err = put_byte(&out, MSG_SET_R) || put_u32(&out, (uint32_t)rc);
		break;
	case MSG_CONV: {
		char *answer = NULL;
		if (get_u32(in, &v1) || get_str(in, &s))
			return -1;
		rc = conv_one(pamh, (int)v1, s, &answer);
		free_str(s);
		err = put_byte(&out, MSG_CONV_R) || put_u32(&out, (uint32_t)rc) ||
		      put_u32(&out, answer != NULL) || put_str(&out, answer);
		free_str(answer);
		break;
	}
	case MSG_LOG:
		if (get_u32(in, &v1) || get_str(in, &s))
			return -1;
		pam_syslog(pamh, (int)(v1 & 7), "%s", s);
		free_str(s);
		return 0; /* no answer */
	case MSG_RESULT:
		if (get_u32(in, &v2))
			return -1;
		*result = (int)v2;
		done = 1;
		return done;
	default:
		return -1;
	}
	if (!err)
		err = send_msg(sock, &out);
	buf_wipe(&out);
	return err ? -1 : 0;
}

static void free_int(pam_handle_t *pamh, void *data, int error_status)
{
	(void)pamh;
	(void)error_status;
	free(data);
}

static int store_result(pam_handle_t *pamh, int rc)
{
	int *p = malloc(sizeof(int));
	if (p) {
		*p = rc;
		if (pam_set_data(pamh, DATA_NAME, p, free_int) != PAM_SUCCESS)
			free(p);
	}
	return rc;
}

PAM_EXTERN int pam_sm_authenticate(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	struct opts o;
	struct buf msg = {0};
	int sv[2], result = PAM_AUTHINFO_UNAVAIL, finished = 0;
	pid_t pid;

	parse_opts(argc, argv, &o);
	if (!helper_ok(pamh, o.helper))
		return store_result(pamh, PAM_AUTHINFO_UNAVAIL);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
		pam_syslog(pamh, LOG_ERR, "socketpair: %s", strerror(errno));
		return store_result(pamh, PAM_AUTHINFO_UNAVAIL);
	}
	pid = spawn_helper(pamh, o.helper, sv[1]);
	close(sv[1]);
	if (pid < 0) {
		close(sv[0]);
		return store_result(pamh, PAM_AUTHINFO_UNAVAIL);
	}

	int err = put_byte(&msg, MSG_START) || put_u32(&msg, (uint32_t)flags) || put_u32(&msg, (uint32_t)argc);
	for (int i = 0; !err && i < argc; i++)
		err = put_str(&msg, argv[i]);
	if (!err)
		err = send_msg(sv[0], &msg);
	buf_wipe(&msg);

	/* Each answer of the helper (outside conversations, which wait for a
	 * person) must come within its own timeout plus a grace period. */
	long long wait_ms = ((long long)o.timeout + GRACE_SECONDS) * 1000;
	while (!err) {
		if (recv_msg(sv[0], &msg, now_ms() + wait_ms)) {
			err = 1;
			break;
		}
		int r = serve(pamh, sv[0], &msg, &result);
		if (r < 0)
			err = 1;
		else if (r == 1) {
			finished = 1;
			break;
		}
	}
	buf_wipe(&msg);
	reap(pid, sv[0], !finished);
	close(sv[0]);
	if (!finished) {
		pam_syslog(pamh, LOG_ERR, "helper %s failed or timed out", o.helper);
		result = PAM_AUTHINFO_UNAVAIL;
	}
	return store_result(pamh, result);
}

PAM_EXTERN int pam_sm_setcred(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	(void)pamh, (void)flags, (void)argc, (void)argv;
	return PAM_SUCCESS;
}

PAM_EXTERN int pam_sm_acct_mgmt(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	const void *data = NULL;
	(void)flags, (void)argc, (void)argv;
	if (pam_get_data(pamh, DATA_NAME, &data) == PAM_SUCCESS && data && *(const int *)data == PAM_SUCCESS)
		return PAM_SUCCESS;
	return PAM_AUTH_ERR;
}

PAM_EXTERN int pam_sm_open_session(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	(void)pamh, (void)flags, (void)argc, (void)argv;
	return PAM_SUCCESS;
}

PAM_EXTERN int pam_sm_close_session(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	(void)pamh, (void)flags, (void)argc, (void)argv;
	return PAM_SUCCESS;
}

PAM_EXTERN int pam_sm_chauthtok(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	(void)pamh, (void)flags, (void)argc, (void)argv;
	return PAM_SERVICE_ERR;
}
