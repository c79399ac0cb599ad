/* distrodebug-launch: run a dynamically linked toolbox program with the toolbox's own ELF loader
 * and libraries, from wherever the toolbox's root is seen.
 *
 * Each tool NAME on PATH is a hard link to this static program at /usr/local/bin/NAME. After the
 * session chroots into the target, the toolbox's root is /proc/<P>/root, the target's libraries
 * may be missing or other versions, and a "#!/bin/sh" wrapper would look for the target's shell.
 * The kernel tells us the path we were executed by (AT_EXECFN, e.g.
 * /proc/42/root/usr/local/bin/strace); what comes before /usr/local/bin/NAME is the toolbox's
 * root. From there we read PREFIX/launch.conf (first line: the loader; then library folders,
 * all relative to PREFIX; "argv0-path NAME" lines name the tools that must see their real path
 * as argv[0]; "args NAME ARG..." lines give arguments that go before the user's), find the real
 * program in PREFIX's bin folders, and exec
 *   LOADER --inhibit-cache --library-path DIRS --argv0 NAME PROGRAM ARGS...
 * The loader and library path apply to this program only: whatever it runs (strace's or gdb's
 * child, say) uses the target's own loader and libraries, as it should.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>

#define BIN_DIR "/usr/local/bin/"
#define PREFIX "/opt/distrodebug"
#define MAX_DIRS 64

static const char *const program_dirs[] = {"/usr/sbin/", "/usr/bin/", "/sbin/", "/bin/", NULL};

static char *join(const char *a, const char *b, const char *c) {
    size_t size = strlen(a) + strlen(b) + strlen(c) + 1;
    char *out = malloc(size);
    if (out == NULL) {
        perror("distrodebug-launch");
        exit(126);
    }
    snprintf(out, size, "%s%s%s", a, b, c);
    return out;
}

/* The toolbox's root as this process sees it: "" in the sidecar, /proc/P/root after a chroot. */
static char *toolbox_root(const char *name) {
    const char *execfn = (const char *)getauxval(AT_EXECFN);
    char *suffix = join(BIN_DIR, name, "");
    if (execfn != NULL) {
        size_t len = strlen(execfn), tail = strlen(suffix);
        if (len >= tail && strcmp(execfn + len - tail, suffix) == 0) {
            char *root = strndup(execfn, len - tail);
            free(suffix);
            return root;
        }
    }
    free(suffix);
    /* Run by another path (a relative one, a symlink): the session exports where the tools are. */
    const char *tools = getenv("DISTRODEBUG_TOOLS");
    if (tools != NULL && strcmp(tools, "/") != 0) {
        return strdup(tools);
    }
    return strdup("");
}

int main(int argc, char **argv) {
    (void)argc;
    const char *execfn = (const char *)getauxval(AT_EXECFN);
    const char *called = execfn != NULL ? execfn : argv[0];
    const char *slash = strrchr(called, '/');
    const char *name = slash != NULL ? slash + 1 : called;
    if (strcmp(name, "distrodebug-launch") == 0) {
        fprintf(stderr, "distrodebug-launch: run a tool by its own name (a hard link to me)\n");
        return 2;
    }
    char *prefix = join(toolbox_root(name), PREFIX, "");
    char *conf_path = join(prefix, "/launch.conf", "");
    FILE *conf = fopen(conf_path, "r");
    if (conf == NULL) {
        fprintf(stderr, "distrodebug: cannot run %s: %s: %s (is DISTRODEBUG_TOOLS set?)\n", name,
                conf_path, strerror(errno));
        return 127;
    }
    char line[4096];
    char *loader = NULL;
    int real_argv0 = 0;
    char *extra[MAX_DIRS];
    size_t extras = 0;
    char *dirs[MAX_DIRS];
    size_t count = 0, total = 1;
    while (fgets(line, sizeof line, conf) != NULL && count < MAX_DIRS) {
        line[strcspn(line, "\n")] = '\0';
        if (line[0] == '\0' || line[0] == '#') {
            continue;
        }
        if (strncmp(line, "argv0-path ", 11) == 0) {
            real_argv0 |= strcmp(line + 11, name) == 0;
            continue;
        }
        size_t own = strlen(name);
        if (strncmp(line, "args ", 5) == 0) {
            if (strncmp(line + 5, name, own) == 0 && line[5 + own] == ' ') {
                for (char *word = strtok(line + 6 + own, " "); word != NULL && extras < MAX_DIRS;
                     word = strtok(NULL, " ")) {
                    extra[extras++] = strdup(word);
                }
            }
            continue;
        }
        char *path = join(prefix, "/", line);
        if (loader == NULL) {
            loader = path;
        } else {
            dirs[count++] = path;
            total += strlen(path) + 1;
        }
    }
    fclose(conf);
    if (loader == NULL) {
        fprintf(stderr, "distrodebug: cannot run %s: %s names no loader\n", name, conf_path);
        return 127;
    }
    char *library_path = calloc(total, 1);
    if (library_path == NULL) {
        perror("distrodebug-launch");
        return 126;
    }
    for (size_t i = 0; i < count; i++) {
        if (i > 0) {
            strcat(library_path, ":");
        }
        strcat(library_path, dirs[i]);
    }
    char *program = NULL;
    for (size_t i = 0; program_dirs[i] != NULL && program == NULL; i++) {
        char *candidate = join(prefix, program_dirs[i], name);
        if (access(candidate, X_OK) == 0) {
            program = candidate;
        } else {
            free(candidate);
        }
    }
    if (program == NULL) {
        fprintf(stderr, "distrodebug: %s is not in the toolbox at %s\n", name, prefix);
        return 127;
    }
    /* loader --inhibit-cache --library-path DIRS --argv0 PROGRAM PROGRAM argv[1..] NULL */
    char **args = calloc((size_t)argc + extras + 8, sizeof *args);
    if (args == NULL) {
        perror("distrodebug-launch");
        return 126;
    }
    size_t n = 0;
    args[n++] = loader;
    args[n++] = "--inhibit-cache";
    args[n++] = "--library-path";
    args[n++] = library_path;
    /* Programs that find their own files from argv[0] (python) get the real path. */
    args[n++] = "--argv0";
    args[n++] = real_argv0 ? program : (char *)name;
    args[n++] = program;
    for (size_t i = 0; i < extras; i++) {
        args[n++] = extra[i];
    }
    for (int i = 1; i < argc; i++) {
        args[n++] = argv[i];
    }
    args[n] = NULL;
    execv(loader, args);
    fprintf(stderr, "distrodebug: cannot run %s with %s: %s\n", name, loader, strerror(errno));
    return errno == ENOENT ? 127 : 126;
}
