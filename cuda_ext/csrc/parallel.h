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

}  // namespace cuda_ext
