// A GPU timeline for a process we cannot run under Nsight Systems (the GPU host has no nsys):
// a CUDA injection library that records CUPTI activity (kernels, copies, memsets,
// synchronisations, runtime and driver API calls) for a short window and writes it as one
// tab-separated file. bench/cupti_timeline.py turns that file into the per-batch table.
//
//   export CUDA_INJECTION64_PATH=build/cupti-trace/libswin_cupti_trace.so SWIN_CUPTI_DIR=/tmp/trace
//   node dist/src/main.js ...
//   touch /tmp/trace/start; sleep 0.5; touch /tmp/trace/stop   # -> /tmp/trace/trace-<pid>.tsv
//
// The CUDA driver calls InitializeInjection() at cuInit, before any kernel or graph exists, so
// kernels inside CUDA graphs are traced too. Tracing runs from then on (its cost is paid all
// along, so the window sees a steady state); only records that start inside the window are
// kept. Lines: kind, start_ns, end_ns, stream, correlation, thread, bytes, graph, name.
//   K kernel (name demangled), M copy (name HtoD/DtoH/...), S memset,
//   R runtime API / D driver API (thread = CUPTI's thread id, stream 0), Y synchronisation.
// A '#' line at the end gives the window and the number of records CUPTI dropped.

#include <cupti.h>
#include <cxxabi.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

struct Row {
  char kind;
  uint64_t start, end;
  uint32_t stream, correlation, thread;
  uint64_t bytes;
  uint32_t graph;
  std::string name;
};

constexpr size_t kBufferBytes = 8u << 20;

std::mutex rows_mutex;
std::vector<Row> rows;
std::atomic<uint64_t> window_start{UINT64_MAX};  // CUPTI timestamps (ns)
std::atomic<uint64_t> window_end{UINT64_MAX};

bool check(CUptiResult r, const char* what) {
  if (r == CUPTI_SUCCESS) return true;
  const char* msg = nullptr;
  cuptiGetResultString(r, &msg);
  std::fprintf(stderr, "cupti-trace: %s failed: %s\n", what, msg ? msg : "?");
  return false;
}

std::string demangle(const char* name) {
  if (!name) return "?";
  int status = 0;
  char* plain = abi::__cxa_demangle(name, nullptr, nullptr, &status);
  std::string out = status == 0 && plain ? plain : name;
  std::free(plain);
  for (char& c : out)
    if (c == '\t' || c == '\n') c = ' ';
  return out;
}

const char* copyKindName(uint8_t k) {
  switch (k) {
    case CUPTI_ACTIVITY_MEMCPY_KIND_HTOD: return "HtoD";
    case CUPTI_ACTIVITY_MEMCPY_KIND_DTOH: return "DtoH";
    case CUPTI_ACTIVITY_MEMCPY_KIND_DTOD: return "DtoD";
    case CUPTI_ACTIVITY_MEMCPY_KIND_HTOH: return "HtoH";
    default: return "other";
  }
}

std::string apiName(CUpti_CallbackDomain domain, CUpti_CallbackId cbid) {
  const char* name = nullptr;
  if (cuptiGetCallbackName(domain, cbid, &name) != CUPTI_SUCCESS || !name) return "cbid" + std::to_string(cbid);
  return name;
}

// Turns a record into a row when it starts inside the window (or the window is not closed yet);
// the others are dropped before their names are looked up.
void keep(const CUpti_Activity* rec) {
  const uint64_t from = window_start.load(), to = window_end.load();
  const auto outside = [&](uint64_t start) { return start < from || start > to; };
  Row row{};
  switch (rec->kind) {
    case CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL: {
      auto* k = reinterpret_cast<const CUpti_ActivityKernel10*>(rec);
      if (outside(k->start)) return;
      row = {'K', k->start, k->end, k->streamId, k->correlationId, 0, 0, k->graphId, demangle(k->name)};
      break;
    }
    case CUPTI_ACTIVITY_KIND_MEMCPY: {
      auto* m = reinterpret_cast<const CUpti_ActivityMemcpy6*>(rec);
      if (outside(m->start)) return;
      row = {'M', m->start, m->end, m->streamId, m->correlationId, 0, m->bytes, m->graphId, copyKindName(m->copyKind)};
      break;
    }
    case CUPTI_ACTIVITY_KIND_MEMSET: {
      auto* m = reinterpret_cast<const CUpti_ActivityMemset4*>(rec);
      if (outside(m->start)) return;
      row = {'S', m->start, m->end, m->streamId, m->correlationId, 0, m->bytes, m->graphId, "memset"};
      break;
    }
    case CUPTI_ACTIVITY_KIND_RUNTIME:
    case CUPTI_ACTIVITY_KIND_DRIVER: {
      auto* a = reinterpret_cast<const CUpti_ActivityAPI*>(rec);
      if (outside(a->start)) return;
      const bool runtime = rec->kind == CUPTI_ACTIVITY_KIND_RUNTIME;
      row = {runtime ? 'R' : 'D',
             a->start,
             a->end,
             0,
             a->correlationId,
             a->threadId,
             0,
             0,
             apiName(runtime ? CUPTI_CB_DOMAIN_RUNTIME_API : CUPTI_CB_DOMAIN_DRIVER_API, a->cbid)};
      break;
    }
    case CUPTI_ACTIVITY_KIND_SYNCHRONIZATION: {
      auto* s = reinterpret_cast<const CUpti_ActivitySynchronization2*>(rec);
      if (outside(s->start)) return;
      row = {'Y', s->start, s->end, s->streamId, s->correlationId, 0, 0, 0, "sync" + std::to_string(s->type)};
      break;
    }
    default: return;
  }
  std::lock_guard<std::mutex> lock(rows_mutex);
  rows.push_back(std::move(row));
}

void CUPTIAPI bufferRequested(uint8_t** buffer, size_t* size, size_t* max_records) {
  *buffer = static_cast<uint8_t*>(std::aligned_alloc(8, kBufferBytes));
  *size = *buffer ? kBufferBytes : 0;
  *max_records = 0;
}

void CUPTIAPI bufferCompleted(CUcontext, uint32_t, uint8_t* buffer, size_t, size_t valid) {
  CUpti_Activity* rec = nullptr;
  while (cuptiActivityGetNextRecord(buffer, valid, &rec) == CUPTI_SUCCESS) keep(rec);
  std::free(buffer);
}

bool exists(const std::string& path) { return access(path.c_str(), F_OK) == 0; }

// Waits for <dir>/start and <dir>/stop, then flushes CUPTI's buffers and writes the file.
void watch(std::string dir) {
  using namespace std::chrono_literals;
  while (!exists(dir + "/start")) std::this_thread::sleep_for(2ms);
  uint64_t now = 0;
  cuptiGetTimestamp(&now);
  window_start = now;
  std::fprintf(stderr, "cupti-trace: window opened\n");
  while (!exists(dir + "/stop")) std::this_thread::sleep_for(2ms);
  cuptiGetTimestamp(&now);
  window_end = now;
  std::this_thread::sleep_for(200ms);  // work launched in the window finishes on the GPU
  check(cuptiActivityFlushAll(CUPTI_ACTIVITY_FLAG_FLUSH_FORCED), "cuptiActivityFlushAll");
  size_t dropped = 0;
  cuptiActivityGetNumDroppedRecords(nullptr, 0, &dropped);
  const std::string path = dir + "/trace-" + std::to_string(getpid()) + ".tsv";
  const std::string tmp = path + ".part";
  FILE* f = std::fopen(tmp.c_str(), "w");
  if (!f) {
    std::fprintf(stderr, "cupti-trace: cannot write %s\n", tmp.c_str());
    return;
  }
  std::lock_guard<std::mutex> lock(rows_mutex);
  std::fprintf(f, "kind\tstart_ns\tend_ns\tstream\tcorrelation\tthread\tbytes\tgraph\tname\n");
  for (const Row& r : rows)
    std::fprintf(f, "%c\t%llu\t%llu\t%u\t%u\t%u\t%llu\t%u\t%s\n", r.kind, static_cast<unsigned long long>(r.start),
                 static_cast<unsigned long long>(r.end), r.stream, r.correlation, r.thread,
                 static_cast<unsigned long long>(r.bytes), r.graph, r.name.c_str());
  std::fprintf(f, "# window_start_ns=%llu window_end_ns=%llu records=%zu dropped=%zu\n",
               static_cast<unsigned long long>(window_start.load()), static_cast<unsigned long long>(window_end.load()),
               rows.size(), dropped);
  std::fclose(f);
  std::rename(tmp.c_str(), path.c_str());
  std::fprintf(stderr, "cupti-trace: %zu records (%zu dropped) in %s\n", rows.size(), dropped, path.c_str());
}

}  // namespace

extern "C" int InitializeInjection(void) {
  const char* dir = std::getenv("SWIN_CUPTI_DIR");
  if (!dir || !*dir) {
    std::fprintf(stderr, "cupti-trace: SWIN_CUPTI_DIR is not set; not tracing\n");
    return 1;
  }
  if (!check(cuptiActivityRegisterCallbacks(bufferRequested, bufferCompleted), "cuptiActivityRegisterCallbacks"))
    return 0;
  const CUpti_ActivityKind kinds[] = {
      CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL, CUPTI_ACTIVITY_KIND_MEMCPY, CUPTI_ACTIVITY_KIND_MEMSET,
      CUPTI_ACTIVITY_KIND_RUNTIME,           CUPTI_ACTIVITY_KIND_DRIVER, CUPTI_ACTIVITY_KIND_SYNCHRONIZATION};
  int enabled = 0;
  for (CUpti_ActivityKind k : kinds) enabled += check(cuptiActivityEnable(k), "cuptiActivityEnable") ? 1 : 0;
  if (enabled == 0) return 0;
  std::thread(watch, std::string(dir)).detach();
  std::fprintf(stderr, "cupti-trace: tracing; window on %s/start and %s/stop\n", dir, dir);
  return 1;
}
