// Two nodes through the RAII wrapper: discover, report, settle, and one error on purpose.
#include "shivya.hpp"

#include <poll.h>

#include <chrono>
#include <cstdio>

static uint64_t now_ms() {
    using namespace std::chrono;
    return (uint64_t)duration_cast<milliseconds>(steady_clock::now().time_since_epoch()).count();
}

int main() {
    try {
        shivya::Node a(shivya::Config().listen("127.0.0.1:0").seed(1).complete_topology(3), now_ms());
        shivya::Node b(shivya::Config().listen("127.0.0.1:0").seed(2).bootstrap(a.local_addr()).complete_topology(3), now_ms());
        a.record_queue_len(0, 12.0);
        b.record_queue_len(2, 3.0);
        uint64_t start = now_ms();
        while (now_ms() - start < 5000) {
            pollfd fds[2] = {{a.fd(), POLLIN, 0}, {b.fd(), POLLIN, 0}};
            uint64_t wait = std::min(a.next_timeout_ms(now_ms()), b.next_timeout_ms(now_ms()));
            poll(fds, 2, (int)std::min<uint64_t>(wait, 50));
            a.step(now_ms());
            b.step(now_ms());
            if (a.snapshot().records == 2 && b.snapshot().records == 2) break;
        }
        auto ra = a.settle(), rb = b.settle();
        std::printf("node a: %zu routes, node b: %zu routes\n", ra.size(), rb.size());
        for (auto& r : ra) std::printf("  %u -> %u at %.2f\n", r.src, r.dst, r.rate);
        bool same = ra.size() == rb.size() && !ra.empty();
        for (size_t i = 0; same && i < ra.size(); i++)
            same = ra[i].src == rb[i].src && ra[i].dst == rb[i].dst && ra[i].rate == rb[i].rate;
        try {
            a.record_queue_len(0, -1.0);
            std::printf("error not raised\n");
            return 1;
        } catch (const shivya::Error& e) {
            std::printf("bad input rejected: %s\n", e.what());
        }
        if (!same) {
            std::printf("routes differ\n");
            return 1;
        }
        std::printf("cpp example: ok\n");
        return 0;
    } catch (const shivya::Error& e) {
        std::fprintf(stderr, "%s\n", e.what());
        return 1;
    }
}
