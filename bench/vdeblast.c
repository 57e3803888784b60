/* vdeblast: a minimal VDE (libvdeplug protocol v3) client for throughput benchmarks.
 *
 *   vdeblast send DIR SIZE SECONDS DSTMAC   -> sends SIZE-byte frames for SECONDS, prints frames sent
 *   vdeblast recv DIR SECONDS MYMAC          -> counts frames for SECONDS after the first, prints count
 *
 * Written for vnet's bench/ so that vde_switch and the vnet switch are driven by
 * the same C-speed client (a Python client would be the bottleneck). */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

struct __attribute__((packed)) request_v3 {
  uint32_t magic, version;
  int32_t type;
  struct sockaddr_un sock;
  char description[128];
};

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void parse_mac(const char *s, unsigned char *m) {
  unsigned v[6];
  if (sscanf(s, "%x:%x:%x:%x:%x:%x", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]) != 6) {
    fprintf(stderr, "bad MAC %s\n", s);
    exit(2);
  }
  for (int i = 0; i < 6; i++) m[i] = (unsigned char)v[i];
}

static int vde_connect(const char *dir, int *ctl_out) {
  struct sockaddr_un ctl = {.sun_family = AF_UNIX};
  snprintf(ctl.sun_path, sizeof ctl.sun_path, "%s/ctl", dir);
  int fctl = socket(AF_UNIX, SOCK_STREAM, 0);
  if (connect(fctl, (struct sockaddr *)&ctl, sizeof ctl) < 0) { perror("connect ctl"); exit(1); }
  int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
  struct request_v3 req;
  memset(&req, 0, sizeof req);
  req.magic = 0xfeedface; req.version = 3; req.type = 0;
  req.sock.sun_family = AF_UNIX;
  for (int n = 0;; n++) {
    snprintf(req.sock.sun_path, sizeof req.sock.sun_path, "%s/.blast%05d-%05d", dir, getpid(), n);
    if (bind(fd, (struct sockaddr *)&req.sock, sizeof req.sock) == 0) break;
    if (errno != EADDRINUSE) { perror("bind"); exit(1); }
  }
  strcpy(req.description, "vdeblast");
  size_t len = sizeof req - sizeof req.description + strlen(req.description);
  if (write(fctl, &req, len) != (ssize_t)len) { perror("write req"); exit(1); }
  struct sockaddr_un reply;
  if (read(fctl, &reply, sizeof reply) != sizeof reply) { fprintf(stderr, "no reply\n"); exit(1); }
  if (connect(fd, (struct sockaddr *)&reply, sizeof reply) < 0) { perror("connect data"); exit(1); }
  unlink(req.sock.sun_path);
  int sz = 4 << 20;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
  *ctl_out = fctl;
  return fd;
}

int main(int argc, char **argv) {
  if (argc < 5) { fprintf(stderr, "usage: see source\n"); return 2; }
  int ctl, fd = vde_connect(argv[2], &ctl);
  unsigned char frame[9234];
  memset(frame, 0x55, sizeof frame);
  if (!strcmp(argv[1], "send")) {
    int size = atoi(argv[3]);
    double secs = atof(argv[4]);
    parse_mac(argv[5], frame);
    unsigned char src[6] = {2, 0, 0, 0, 0xbb, 1};
    memcpy(frame + 6, src, 6);
    frame[12] = 0x88; frame[13] = 0xb5;
    long sent = 0;
    double end = now() + secs;
    while (1) {
      for (int i = 0; i < 256; i++) {
        if (send(fd, frame, size, 0) == size) sent++;
      }
      if (now() >= end) break;
    }
    printf("%ld\n", sent);
  } else {
    double secs = atof(argv[3]);
    parse_mac(argv[4], frame + 6);
    /* announce ourselves so the switch learns our MAC */
    memset(frame, 0xff, 6);
    frame[12] = 0x88; frame[13] = 0xb5;
    send(fd, frame, 60, 0);
    printf("ready\n");
    fflush(stdout);
    long got = 0;
    unsigned char buf[9234];
    if (recv(fd, buf, sizeof buf, 0) > 0) got = 1;
    double end = now() + secs;
    struct timeval tv = {0, 200000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    while (now() < end) {
      if (recv(fd, buf, sizeof buf, 0) > 0) got++;
    }
    printf("%ld\n", got);
  }
  close(fd);
  close(ctl);
  return 0;
}
