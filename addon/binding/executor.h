// A small pool of worker threads owned by one engine. GPU work runs here, not
// on libuv's shared pool (which sharp, fs and dns also use), and each finished
// task hops back to the JS thread through its own thread-safe function, which
// keeps the event loop alive exactly while the task is pending.
#pragma once

#include <napi.h>

#include <condition_variable>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace swin {

class Executor {
 public:
  // Runs on a worker thread; may throw anything.
  using Work = std::function<void()>;
  // Runs on the JS thread with the exception `work` threw (or nullptr).
  // Not called when the environment is being torn down.
  using Done = std::function<void(Napi::Env, std::exception_ptr)>;

  // `init` runs once on each worker thread before any task (e.g. cudaSetDevice).
  Executor(int threads, std::function<void()> init);
  ~Executor();  // shutdown()
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  // JS thread only.
  void submit(Napi::Env env, Work work, Done done);

  // Runs what is queued, then joins the threads. Idempotent. Never call it
  // from one of this executor's own threads.
  void shutdown();

  int size() const { return static_cast<int>(threads_.size()); }  // fixed at construction

 private:
  struct Task;
  static void deliver(Napi::Env env, Napi::Function, std::nullptr_t*, Task* task);
  void loop();

  std::function<void()> init_;
  std::mutex join_mu_;  // serialises shutdown() callers
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::unique_ptr<Task>> queue_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace swin
