/* distrodebug-reaper: first process of a debug sidecar that shares a target's PID namespace.
 *
 * Without it, anything the debug session leaves behind is reparented to the target's PID 1,
 * a distroless app that never calls wait(): zombies pile up in the target. As a child
 * subreaper we adopt those orphans instead, reap them, and end them when the session ends.
 *
 * Usage: distrodebug-reaper CMD [ARGS...]
 * Exit status: CMD's, 128+N if CMD died of signal N, 125 usage/fork error, 126/127 exec error.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static pid_t main_pid;
static int main_status;
static int main_done;

/* Reap every child that has exited; return 0 once we have no children left at all. */
static int reap(void)
{
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		if (pid == main_pid) {
			main_status = status;
			main_done = 1;
		}
	}
	return !(pid < 0 && errno == ECHILD);
}

/* An interactive shell puts itself in its own process group: signal the group as well,
 * unless that group is ours (we would signal ourselves). */
static void forward(int sig)
{
	if (main_done)
		return;
	if (getpgid(main_pid) == main_pid && main_pid != getpgrp())
		kill(-main_pid, sig);
	kill(main_pid, sig);
}

/* Orphans are reparented to us, so our children are exactly the /proc entries whose
 * PPid is our pid; there is no other way to find them in a PID namespace we share. */
static void signal_children(int sig)
{
	char path[64], line[128];
	pid_t self = getpid();
	struct dirent *entry;
	DIR *proc = opendir("/proc");

	if (proc == NULL)
		return;
	while ((entry = readdir(proc)) != NULL) {
		pid_t pid = (pid_t)atoi(entry->d_name);
		FILE *status;

		if (pid <= 0)
			continue;
		snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
		if ((status = fopen(path, "r")) == NULL)
			continue;
		while (fgets(line, sizeof line, status) != NULL) {
			if (strncmp(line, "PPid:", 5) != 0)
				continue;
			if ((pid_t)atoi(line + 5) == self) {
				kill(pid, sig);
				kill(pid, SIGCONT); /* a stopped job would never see SIGTERM */
			}
			break;
		}
		fclose(status);
	}
	closedir(proc);
}

int main(int argc, char **argv)
{
	static const int ignored[] = { SIGINT, SIGQUIT, SIGTSTP, SIGTTIN, SIGTTOU };
	struct timespec tick = { 0, 50 * 1000 * 1000 }, start, now;
	sigset_t waited, none;
	siginfo_t info;
	size_t i;
	int sig;

	if (argc < 2) {
		fprintf(stderr, "usage: %s CMD [ARGS...]\n", argv[0]);
		return 125;
	}
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0)
		perror("reaper: prctl(PR_SET_CHILD_SUBREAPER)");

	/* Blocked and collected with sigwaitinfo: no handler races with our own waitpid. */
	sigemptyset(&waited);
	sigaddset(&waited, SIGCHLD);
	sigaddset(&waited, SIGTERM);
	sigaddset(&waited, SIGHUP);
	sigprocmask(SIG_BLOCK, &waited, NULL);
	/* With a TTY we sit in the foreground group: Ctrl-C and friends are for the child. */
	for (i = 0; i < sizeof ignored / sizeof ignored[0]; i++)
		signal(ignored[i], SIG_IGN);

	main_pid = fork();
	if (main_pid < 0) {
		perror("reaper: fork");
		return 125;
	}
	if (main_pid == 0) {
		for (sig = 1; sig < NSIG; sig++)
			signal(sig, SIG_DFL); /* fails harmlessly for KILL, STOP and libc-internal ones */
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		execvp(argv[1], argv + 1);
		sig = errno;
		fprintf(stderr, "reaper: %s: %s\n", argv[1], strerror(sig));
		_exit(sig == EACCES || sig == ENOEXEC ? 126 : 127);
	}

	while (!main_done) {
		if (sigwaitinfo(&waited, &info) < 0)
			continue;
		if (info.si_signo == SIGCHLD)
			reap();
		else
			forward(info.si_signo);
	}

	/* The session is over: ask what is left to stop, then insist after about a second.
	 * Rescan each round, because children of the ones we end are reparented to us. */
	clock_gettime(CLOCK_MONOTONIC, &start);
	signal_children(SIGTERM);
	while (reap()) {
		sigtimedwait(&waited, &info, &tick); /* wakes early on SIGCHLD */
		clock_gettime(CLOCK_MONOTONIC, &now);
		if ((now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000 >= 1000)
			signal_children(SIGKILL);
	}

	if (WIFSIGNALED(main_status))
		return 128 + WTERMSIG(main_status);
	return WEXITSTATUS(main_status);
}
