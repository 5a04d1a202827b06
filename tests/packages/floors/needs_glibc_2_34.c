/* A shared object whose highest glibc symbol version is GLIBC_2.34 when built against
   glibc 2.34 or newer: pthread_create moved from libpthread into libc in 2.34 and got a
   new version there. Used by tests/test_contract.py. */
#include <pthread.h>

static void *identity(void *arg) { return arg; }

int start_thread(void) {
    pthread_t thread;
    return pthread_create(&thread, 0, identity, 0);
}
