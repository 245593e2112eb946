/* Built with _GNU_SOURCE (Package.swift): setns, unshare, gettid, CLONE_* are only declared then. */
#include "CLinuxSupport.h"
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <sys/syscall.h>
#include <fcntl.h>
#include <unistd.h>

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/statvfs.h>
#include <sys/vfs.h>
#include <linux/magic.h>
#include <linux/netlink.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>

#ifndef NSFS_MAGIC
#define NSFS_MAGIC 0x6e736673
#endif
#ifndef SOL_NETLINK
#define SOL_NETLINK 270
#endif

const int CLS_CLONE_NEWNET = CLONE_NEWNET;
const int CLS_CLONE_NEWNS = CLONE_NEWNS;
const long CLS_NSFS_MAGIC = NSFS_MAGIC;
const unsigned long CLS_MS_BIND = MS_BIND;
const unsigned long CLS_MS_REC = MS_REC;
const unsigned long CLS_MS_SHARED = MS_SHARED;
const unsigned long CLS_MS_SLAVE = MS_SLAVE;
const int CLS_MNT_DETACH = MNT_DETACH;
const int CLS_NETLINK_NETFILTER = NETLINK_NETFILTER;

const int CLS_SOCK_DGRAM = SOCK_DGRAM;
const int CLS_SOCK_NONBLOCK = SOCK_NONBLOCK;
const int CLS_SOCK_CLOEXEC = SOCK_CLOEXEC;
const int CLS_MSG_DONTWAIT = MSG_DONTWAIT;

int cls_setns(int fd, int nstype) { return setns(fd, nstype) == 0 ? 0 : -errno; }
int cls_unshare(int flags) { return unshare(flags) == 0 ? 0 : -errno; }
pid_t cls_gettid(void) { return gettid(); }

/* Written by the creating thread before the new one exists, read by the new one. */
static cpu_set_t cls_creator_cpus;

int cls_pthread_create_elsewhere(pthread_t *thread, void *(*body)(void *), void *arg) {
    pthread_attr_t attr;
    int rc = pthread_attr_init(&attr);
    if (rc != 0) return -rc;
    int here = sched_getcpu();
    if (here >= 0 && sched_getaffinity(0, sizeof cls_creator_cpus, &cls_creator_cpus) == 0) {
        cpu_set_t others = cls_creator_cpus;
        CPU_CLR(here, &others);
        if (CPU_COUNT(&others) > 0) pthread_attr_setaffinity_np(&attr, sizeof others, &others);
    } else {
        CPU_ZERO(&cls_creator_cpus);   /* unknown: cls_thread_allow_cpus_of_creator then does nothing */
    }
    rc = pthread_create(thread, &attr, body, arg);
    pthread_attr_destroy(&attr);
    return -rc;
}

int cls_thread_allow_cpus_of_creator(void) {
    if (CPU_COUNT(&cls_creator_cpus) == 0) return 0;
    return sched_setaffinity(0, sizeof cls_creator_cpus, &cls_creator_cpus) == 0 ? 0 : -errno;
}

int cls_thread_allowed_cpus(void) {
    cpu_set_t set;
    return sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 0;
}

int cls_mount(const char *source, const char *target, const char *fstype, unsigned long flags) {
    return mount(source, target, fstype, flags, NULL) == 0 ? 0 : -errno;
}

int cls_umount2(const char *target, int flags) { return umount2(target, flags) == 0 ? 0 : -errno; }

long cls_statfs_type(const char *path) {
    struct statfs st;
    if (statfs(path, &st) != 0) return -errno;
    return (long)st.f_type;
}

int cls_probe_netlink(int protocol) {
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, protocol);
    if (fd < 0) return -errno;
    close(fd);
    return 0;
}

int cls_netlink_enable_ext_ack(int fd) {
    int one = 1;
    return setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof one) == 0 ? 0 : -errno;
}

int cls_nlmsgerr_error(const void *p) { return ((const struct nlmsgerr *)p)->error; }

size_t cls_nlmsgerr_ext_ack_message(const void *p, char *buf, size_t buflen) {
    if (buflen == 0) return 0;
    buf[0] = '\0';
    const struct nlmsgerr *err = p;
    /* libnl hands us nlmsg_data(hdr): the header sits NLMSG_HDRLEN bytes before. */
    const struct nlmsghdr *hdr = (const struct nlmsghdr *)((const char *)p - NLMSG_HDRLEN);
    if (!(hdr->nlmsg_flags & NLM_F_ACK_TLVS)) return 0;

    /* TLVs follow the nlmsgerr, which embeds either the whole request or (NLM_F_CAPPED) its header. */
    size_t offset = sizeof(struct nlmsgerr);
    if (!(hdr->nlmsg_flags & NLM_F_CAPPED)) offset += err->msg.nlmsg_len - sizeof(struct nlmsghdr);
    size_t payload = hdr->nlmsg_len - NLMSG_HDRLEN;
    const char *tlv = (const char *)p + NLMSG_ALIGN(offset);
    const char *end = (const char *)p + payload;

    while (tlv + sizeof(struct nlattr) <= end) {
        const struct nlattr *attr = (const struct nlattr *)tlv;
        if (attr->nla_len < sizeof(struct nlattr) || tlv + attr->nla_len > end) break;
        if ((attr->nla_type & NLA_TYPE_MASK) == NLMSGERR_ATTR_MSG) {
            size_t len = attr->nla_len - NLA_HDRLEN;
            const char *text = tlv + NLA_HDRLEN;
            size_t n = strnlen(text, len);
            if (n >= buflen) n = buflen - 1;
            memcpy(buf, text, n);
            buf[n] = '\0';
            return n;
        }
        tlv += NLA_ALIGN(attr->nla_len);
    }
    return 0;
}

int cls_netns_exec(const char *ns_path, const char *sysfs_name, char *const argv[], const char **failed_step) {
    /* No allocation and no Swift between these calls: errno is read right after each one. */
    int fd = open(ns_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) { *failed_step = "open"; return -errno; }
    if (setns(fd, CLONE_NEWNET) != 0) { int e = errno; close(fd); *failed_step = "setns"; return -e; }
    close(fd);

    /* Private mount namespace for this thread (and the program it becomes), so remounting /sys does not
     * touch the host; MS_SLAVE keeps host mounts propagating in, never out. */
    if (unshare(CLONE_NEWNS) != 0) { *failed_step = "unshare"; return -errno; }
    if (mount("", "/", "none", MS_SLAVE | MS_REC, NULL) != 0) { *failed_step = "mount /"; return -errno; }

    /* sysfs shows the devices of the namespace of whoever mounts it: remount it from inside. Keep it
     * read-only if the original was (iproute2 netns_switch does the same). */
    unsigned long flags = 0;
    if (umount2("/sys", MNT_DETACH) < 0) {
        struct statvfs fs;
        if (statvfs("/sys", &fs) == 0 && (fs.f_flag & ST_RDONLY)) flags |= MS_RDONLY;
    }
    if (mount(sysfs_name, "/sys", "sysfs", flags, NULL) != 0) { *failed_step = "mount /sys"; return -errno; }

    execvp(argv[0], argv);
    *failed_step = "execvp";
    return -errno;
}

struct cls_spawn_args {
    const char *ns_path;
    const char *sysfs_name;
    char *const *argv;
    int fds[3];
    int new_session;
    int report;
};

static const char *const cls_spawn_steps[] = { "open", "setns", "unshare", "mount /", "mount /sys", "execvp",
                                               "setsid", "dup2" };

/* The child of cls_netns_spawn. It shares natlab's memory (CLONE_VM) while natlab's calling thread is
 * suspended (CLONE_VFORK), on a stack of its own: it writes nothing of natlab's but errno (natlab reads
 * errno only after its own calls) and never allocates. */
static int cls_spawn_child(void *p) {
    struct cls_spawn_args *a = p;
    int result[2] = { 0, 0 };
    int report = a->report;
    /* Signals are all blocked (by the parent) until the dispositions are the defaults: natlab's handlers
     * must not run here. The program starts with default dispositions and nothing blocked, as from a
     * shell. */
    for (int sig = 1; sig < NSIG; sig++) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = SIG_DFL;
        sigaction(sig, &sa, NULL);  /* fails harmlessly for SIGKILL, SIGSTOP and glibc's own */
    }
    sigset_t empty;
    sigemptyset(&empty);
    sigprocmask(SIG_SETMASK, &empty, NULL);
    if (a->new_session && setsid() < 0) { result[0] = errno; result[1] = 6; goto fail; }
    for (int i = 0; i < 3; i++) {
        if (a->fds[i] >= 0 && a->fds[i] != i && dup2(a->fds[i], i) < 0) { result[0] = errno; result[1] = 7; goto fail; }
    }
    /* Nothing else of natlab's goes with the program: an inherited pipe (natlab's caller's stdout, say)
     * held open by a long-lived role would keep that caller waiting for EOF forever. The report pipe is
     * moved to fd 3 and closes on exec. */
    if (report != 3) {
        if (dup3(report, 3, O_CLOEXEC) < 0) { result[0] = errno; result[1] = 7; goto fail; }
        report = 3;
    }
    syscall(SYS_close_range, 4, ~0U, 0);
    const char *step = "exec";
    int rc = cls_netns_exec(a->ns_path, a->sysfs_name, a->argv, &step);
    result[0] = -rc;
    for (int i = 0; i < 6; i++) if (step == cls_spawn_steps[i] || strcmp(step, cls_spawn_steps[i]) == 0) result[1] = i;
fail:
    (void)!write(report, result, sizeof result);
    _exit(127);
}

pid_t cls_netns_spawn(const char *ns_path, const char *sysfs_name, char *const argv[],
                      int stdin_fd, int stdout_fd, int stderr_fd, int new_session, const char **failed_step) {
    /* The child reports a failure as (errno, step index) through this pipe; a successful execvp closes
     * it (O_CLOEXEC), so the parent reads EOF. */
    int report[2];
    if (pipe2(report, O_CLOEXEC) != 0) { *failed_step = "pipe"; return -errno; }
    struct cls_spawn_args args = {
        .ns_path = ns_path, .sysfs_name = sysfs_name, .argv = argv,
        .fds = { stdin_fd, stdout_fd, stderr_fd }, .new_session = new_session, .report = report[1],
    };
    /* clone(CLONE_VM | CLONE_VFORK), as glibc's posix_spawn: no copy of natlab's page tables and no
     * copy-on-write faults afterwards (fork cost about 1 ms per role with natlab's 110 MB binary
     * mapped); this thread waits until the program is exec'd or the child has failed. */
    const size_t stack_size = 256 * 1024;
    void *stack = mmap(NULL, stack_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (stack == MAP_FAILED) { int e = errno; close(report[0]); close(report[1]); *failed_step = "mmap"; return -e; }
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pid_t pid = clone(cls_spawn_child, (char *)stack + stack_size, CLONE_VM | CLONE_VFORK | SIGCHLD, &args);
    int clone_errno = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    munmap(stack, stack_size);
    close(report[1]);
    if (pid < 0) { close(report[0]); *failed_step = "clone"; return -clone_errno; }
    int result[2];
    ssize_t n;
    do { n = read(report[0], result, sizeof result); } while (n < 0 && errno == EINTR);
    close(report[0]);
    if (n == (ssize_t)sizeof result) {
        int status;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
        *failed_step = cls_spawn_steps[result[1]];
        return -result[0];
    }
    return pid;
}

/* conntrack -F: one NFNL_SUBSYS_CTNETLINK / IPCTNL_MSG_CT_DELETE request without attributes, which the
 * kernel reads as "flush the table" (family AF_UNSPEC: IPv4 and IPv6), then wait for its ACK. */
int cls_conntrack_flush(int *keep_fd) {
    if (keep_fd) *keep_fd = -1;
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
    if (fd < 0) return -errno;
    struct sockaddr_nl local = { .nl_family = AF_NETLINK };
    if (bind(fd, (struct sockaddr *)&local, sizeof local) < 0) { int e = errno; close(fd); return -e; }

    struct {
        struct nlmsghdr hdr;
        struct nfgenmsg nfg;
    } req;
    memset(&req, 0, sizeof req);
    req.hdr.nlmsg_len = NLMSG_LENGTH(sizeof(struct nfgenmsg));
    req.hdr.nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_DELETE;
    req.hdr.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
    req.hdr.nlmsg_seq = 1;
    req.nfg.nfgen_family = AF_UNSPEC;
    req.nfg.version = NFNETLINK_V0;
    req.nfg.res_id = 0;

    struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
    ssize_t sent;
    do {
        sent = sendto(fd, &req, req.hdr.nlmsg_len, 0, (struct sockaddr *)&kernel, sizeof kernel);
    } while (sent < 0 && errno == EINTR);
    if (sent < 0) { int e = errno; close(fd); return -e; }

    char buf[8192] __attribute__((aligned(NLMSG_ALIGNTO)));
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            int e = errno; close(fd); return -e;
        }
        for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)n); h = NLMSG_NEXT(h, n)) {
            if (h->nlmsg_seq != 1) continue;
            if (h->nlmsg_type == NLMSG_ERROR) {
                const struct nlmsgerr *err = NLMSG_DATA(h);
                if (keep_fd) *keep_fd = fd; else close(fd);
                return err->error;   /* 0: ACK; else -errno */
            }
        }
    }
}

/* The caller's NETLINK_NETFILTER sockets, handed to a child that closes them (see the header). */
#include <dirent.h>
#include <poll.h>
#include <stdlib.h>

static int cls_is_netfilter_socket(int fd) {
    int domain = 0, protocol = 0;
    socklen_t len = sizeof domain;
    if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) != 0 || domain != AF_NETLINK) return 0;
    len = sizeof protocol;
    return getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &protocol, &len) == 0 && protocol == NETLINK_NETFILTER;
}

static int cls_compare_int(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* What the closer child needs, in memory of its own (the top of its stack mapping): with CLONE_VM the
 * caller returns at once and its stack frame is gone by the time the child reads these. */
struct cls_closer_args {
    int keep[1024];
    int count;
    int release;
    int parent;   /* pidfd of the caller's process, or -1 */
};

/* The closer child. It shares the caller's memory (CLONE_VM: no copy of natlab's page tables, which
 * for a 110 MB binary cost about 1 ms in fork) but not its descriptor table (a copy, which is the
 * point: it holds the sockets). All signals are blocked (set by the caller), so no handler of natlab's
 * ever runs here and read() is never interrupted; only syscalls, none of which can fail here, so
 * errno (the caller's thread's, shared) is never written. */
static int cls_closer_child(void *p) {
    struct cls_closer_args *a = p;
    /* Keep the netfilter sockets and the release pipe, close everything else (the caller's stdout above
     * all: its reader must see EOF when the caller exits, not when this child does). */
    unsigned int from = 0;
    for (int i = 0; i < a->count; i++) {
        if ((unsigned int)a->keep[i] > from) syscall(SYS_close_range, from, (unsigned int)a->keep[i] - 1, 0);
        from = (unsigned int)a->keep[i] + 1;
    }
    syscall(SYS_close_range, from, ~0U, 0);
    char byte;
    syscall(SYS_read, a->release, &byte, 1);
    if (a->parent < 0) return 0;   /* the exit closes the sockets, and is what waits for nf_tables */
    /* Close them here instead (the wait for nf_tables happens in this close), then stay until the caller
     * has exited, for at most 200 ms: as long as this child lives, the caller's exit is not the last
     * user of the shared memory, so the kernel's tear-down of natlab's address space (exit_mmap, ~0.5 ms
     * for `up`'s ~20 MB resident) happens in this child's exit, after the caller's has been reported. */
    if (a->parent > 0) syscall(SYS_close_range, 0, (unsigned int)a->parent - 1, 0);
    syscall(SYS_close_range, (unsigned int)a->parent + 1, ~0U, 0);
    struct pollfd caller = { .fd = a->parent, .events = POLLIN, .revents = 0 };
    syscall(SYS_poll, &caller, 1, 200);
    return 0;
}

size_t cls_netfilter_closer_stack_size(void) { return 64 * 1024 + sizeof(struct cls_closer_args); }

pid_t cls_netfilter_closer_start(int *release_fd, void **stack_out) {
    *release_fd = -1;
    *stack_out = NULL;
    const size_t stack_size = cls_netfilter_closer_stack_size();
    void *stack = mmap(NULL, stack_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (stack == MAP_FAILED) return -errno;
    struct cls_closer_args *a = (struct cls_closer_args *)((char *)stack + stack_size - sizeof *a);
    a->count = 0;
    DIR *dir = opendir("/proc/self/fd");
    if (!dir) { int e = errno; munmap(stack, stack_size); return -e; }
    int own = dirfd(dir);
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL && a->count < (int)(sizeof a->keep / sizeof a->keep[0]) - 2) {
        if (entry->d_name[0] < '0' || entry->d_name[0] > '9') continue;
        int fd = atoi(entry->d_name);
        if (fd != own && cls_is_netfilter_socket(fd)) a->keep[a->count++] = fd;
    }
    closedir(dir);
    if (a->count == 0) { munmap(stack, stack_size); return 0; }

    int release[2];
    if (pipe2(release, O_CLOEXEC) != 0) { int e = errno; munmap(stack, stack_size); return -e; }
    a->release = release[0];
    a->keep[a->count++] = release[0];
    a->parent = (int)syscall(SYS_pidfd_open, getpid(), 0);
    if (a->parent >= 0) a->keep[a->count++] = a->parent;
    qsort(a->keep, (size_t)a->count, sizeof a->keep[0], cls_compare_int);
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    /* The stack grows down from the argument block. */
    pid_t pid = clone(cls_closer_child, (char *)a - 64, CLONE_VM | SIGCHLD, a);
    int clone_errno = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    close(release[0]);
    if (a->parent >= 0) close(a->parent);
    if (pid < 0) { close(release[1]); munmap(stack, stack_size); return -clone_errno; }
    *release_fd = release[1];
    *stack_out = stack;
    return pid;
}

/* Waits for processes that need not be the caller's children (pidfd_open + poll). */
#include <poll.h>
#include <time.h>

int cls_wait_for_exit(const pid_t *pids, int count, int timeout_ms) {
    struct pollfd fds[256];
    int n = 0, unknown = 0;
    for (int i = 0; i < count; i++) {
        int fd = (int)syscall(SYS_pidfd_open, pids[i], 0);
        if (fd >= 0 && n < 256) { fds[n].fd = fd; fds[n].events = POLLIN; fds[n].revents = 0; n++; }
        else if (fd >= 0) { close(fd); unknown++; }
        else if (errno != ESRCH) unknown++;   /* cannot tell: count it as running */
    }
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    int running = n;
    while (running > 0) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        long elapsed = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
        if (elapsed >= timeout_ms) break;
        int rc = poll(fds, (nfds_t)n, (int)(timeout_ms - elapsed));
        if (rc < 0 && errno != EINTR) break;
        running = 0;
        for (int i = 0; i < n; i++) {
            if (fds[i].fd < 0) continue;
            if (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) { close(fds[i].fd); fds[i].fd = -1; }
            else running++;
        }
    }
    for (int i = 0; i < n; i++) if (fds[i].fd >= 0) close(fds[i].fd);
    return running + unknown;
}
