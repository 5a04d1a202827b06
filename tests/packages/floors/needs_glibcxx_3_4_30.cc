// A shared object that needs GLIBCXX_3.4.30 (GCC 12's libstdc++): GCC 12 exports a new
// std::condition_variable::wait(std::unique_lock<std::mutex>&). RHEL 8 (GCC 8, 3.4.25)
// and Debian 11 (GCC 10, 3.4.28) do not have it. Used by tests/test_contract.py.
#include <condition_variable>
#include <mutex>

static std::mutex lock_;
static std::condition_variable ready_;

extern "C" void wait_once(void) {
    std::unique_lock<std::mutex> lock(lock_);
    ready_.wait(lock);
}
