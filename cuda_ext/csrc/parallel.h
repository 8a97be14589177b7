// A fork-join parallel for of the CPU launchers, on std::thread (no OpenMP: torch's wheels bring
// their own OpenMP runtime, and a second one in the same process fights it for the cores).
#pragma once

#include <stdint.h>

#include <algorithm>
#include <thread>
#include <vector>

namespace cuda_ext {

// Calls body(begin, end) over [0, count) split into up to `threads` contiguous ranges; the
// calling thread takes the first. A thread's start costs tens of microseconds, against calls of
// milliseconds.
template <class Body>
void parallel_for(int64_t count, int threads, const Body &body) {
    const int64_t parts = std::max<int64_t>(1, std::min<int64_t>(threads, count));
    if (count <= 0) return;
    if (parts == 1) return body(int64_t(0), count);
    std::vector<std::thread> workers;
    workers.reserve(parts - 1);
    for (int64_t t = 1; t < parts; t++) workers.emplace_back(body, count * t / parts, count * (t + 1) / parts);
    body(int64_t(0), count / parts);
    for (auto &worker : workers) worker.join();
}

// How many workers `parallel_chunks` uses: one per chunk at most.
inline int chunk_workers(int64_t count, int threads, int64_t grain) {
    const int64_t chunks = (count + grain - 1) / grain;
    return (int)std::max<int64_t>(1, std::min<int64_t>(threads, chunks));
}

// Calls body(worker, begin, end) over [0, count) in chunks of `grain` (> 0) items dealt out in turn
// to `chunk_workers` workers (worker w takes chunks w, w + workers, ...): for work whose cost
// varies along the range (a rasteriser's pixels: the head covers some tiles only), which contiguous
// ranges would leave to one thread. Each worker sees the same chunks in the same order every call.
template <class Body>
void parallel_chunks(int64_t count, int threads, int64_t grain, const Body &body) {
    const int64_t chunks = (count + grain - 1) / grain;
    const int workers = chunk_workers(count, threads, grain);
    parallel_for(workers, workers, [&](int64_t first, int64_t end) {
        for (int64_t worker = first; worker < end; worker++)
            for (int64_t chunk = worker; chunk < chunks; chunk += workers)
                body((int)worker, chunk * grain, std::min(count, (chunk + 1) * grain));
    });
}

}  // namespace cuda_ext
