#include "binding/executor.h"

#include "common/engine.h"

namespace swin {

struct Executor::Task {
  Work work;
  Done done;
  std::exception_ptr error;
  Napi::TypedThreadSafeFunction<std::nullptr_t, Task, &Executor::deliver> tsfn;
};

Executor::Executor(int threads, std::function<void()> init) : init_(std::move(init)) {
  if (threads < 1) threads = 1;
  threads_.reserve(threads);
  for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { loop(); });
}

Executor::~Executor() { shutdown(); }

void Executor::submit(Napi::Env env, Work work, Done done) {
  auto task = std::make_unique<Task>();
  task->work = std::move(work);
  task->done = std::move(done);
  task->tsfn = decltype(task->tsfn)::New(env, "swin-engine-task", 0, 1);
  std::unique_lock<std::mutex> lock(mu_);
  if (stopping_) {
    lock.unlock();
    // Deliver the rejection through the normal path so callers see one shape.
    task->error = std::make_exception_ptr(EngineError(ErrorCode::kDisposed, "the engine was disposed"));
    Task* raw = task.release();
    auto tsfn = raw->tsfn;
    (void)tsfn.NonBlockingCall(raw);
    tsfn.Release();
    return;
  }
  queue_.push_back(std::move(task));
  lock.unlock();
  cv_.notify_one();
}

void Executor::loop() {
  bool init_ok = true;
  std::exception_ptr init_error;
  try {
    if (init_) init_();
  } catch (...) {
    init_ok = false;
    init_error = std::current_exception();
  }
  for (;;) {
    std::unique_ptr<Task> task;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping and drained
      task = std::move(queue_.front());
      queue_.pop_front();
    }
    if (!init_ok) {
      task->error = init_error;
    } else {
      try {
        task->work();
      } catch (...) {
        // Every exception, std:: or not, travels back as a value.
        task->error = std::current_exception();
      }
    }
    task->work = nullptr;  // drop captured resources on this thread
    auto tsfn = task->tsfn;
    Task* raw = task.release();
    // If the environment is closing the task is leaked on purpose: its `done`
    // holds JS references that must not be freed off the JS thread.
    (void)tsfn.NonBlockingCall(raw);
    tsfn.Release();
  }
}

void Executor::deliver(Napi::Env env, Napi::Function, std::nullptr_t*, Task* task) {
  if (env == nullptr) return;  // teardown: nothing to resolve; the task is leaked (see loop())
  std::unique_ptr<Task> owned(task);
  try {
    owned->done(env, owned->error);
  } catch (const Napi::Error& e) {
    // A JS exception escaping here would be reported as uncaught; the promise
    // path above never throws, so this only guards against programming errors.
    e.ThrowAsJavaScriptException();
  }
}

void Executor::shutdown() {
  std::lock_guard<std::mutex> join_lock(join_mu_);
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
}

}  // namespace swin
