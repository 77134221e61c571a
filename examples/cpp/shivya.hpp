// A small RAII wrapper over the Shivya C ABI: handles freed in destructors, errors thrown
// as exceptions carrying the library's message.
#pragma once

#include <shivya.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace shivya {

class Error : public std::runtime_error {
  public:
    Error(shivya_status status, const std::string& what) : std::runtime_error(what), status_(status) {}
    shivya_status status() const { return status_; }

  private:
    shivya_status status_;
};

inline void check(shivya_status s) {
    if (s == SHIVYA_OK) return;
    std::string msg(shivya_last_error_message(nullptr, 0) + 1, '\0');
    shivya_last_error_message(&msg[0], msg.size());
    msg.resize(msg.size() - 1);
    throw Error(s, std::string(shivya_status_name(s)) + ": " + msg);
}

class Config {
  public:
    Config() {
        shivya_config* c = nullptr;
        check(shivya_config_new(&c));
        ptr_.reset(c);
    }
    Config& listen(const std::string& addr) { check(shivya_config_set_listen(ptr_.get(), addr.c_str())); return *this; }
    Config& bootstrap(const std::string& addr) { check(shivya_config_add_bootstrap(ptr_.get(), addr.c_str())); return *this; }
    Config& seed(uint64_t s) { check(shivya_config_set_seed(ptr_.get(), s)); return *this; }
    Config& complete_topology(uint32_t n) { check(shivya_config_set_topology(ptr_.get(), n, nullptr, 0)); return *this; }
    const shivya_config* get() const { return ptr_.get(); }

  private:
    struct Free { void operator()(shivya_config* c) const { shivya_config_free(c); } };
    std::unique_ptr<shivya_config, Free> ptr_;
};

class Node {
  public:
    Node(const Config& config, uint64_t now_ms) {
        shivya_node* n = nullptr;
        check(shivya_node_new(config.get(), now_ms, &n));
        ptr_.reset(n);
    }
    void step(uint64_t now_ms) { check(shivya_step(ptr_.get(), now_ms)); }
    int fd() const { return shivya_fd(ptr_.get()); }
    uint64_t next_timeout_ms(uint64_t now_ms) const {
        uint64_t t = 0;
        check(shivya_next_timeout_ms(ptr_.get(), now_ms, &t));
        return t;
    }
    void record_queue_len(uint32_t vertex, double q) { check(shivya_record_queue_len(ptr_.get(), vertex, q)); }
    std::vector<shivya_route> settle() {
        size_t len = 0;
        shivya_status s = shivya_settle(ptr_.get(), nullptr, 0, &len);
        if (s != SHIVYA_OK && s != SHIVYA_ERR_BUFFER_TOO_SHORT) check(s);
        std::vector<shivya_route> routes(len);
        check(shivya_settle(ptr_.get(), routes.data(), routes.size(), &len));
        routes.resize(len);
        return routes;
    }
    shivya_snapshot snapshot() const {
        shivya_snapshot s;
        check(shivya_node_snapshot(ptr_.get(), &s));
        return s;
    }
    std::string local_addr() const {
        char buf[SHIVYA_ADDR_LEN];
        size_t len = 0;
        check(shivya_local_addr(ptr_.get(), buf, sizeof buf, &len));
        return std::string(buf, len);
    }

  private:
    struct Free { void operator()(shivya_node* n) const { shivya_node_free(n); } };
    std::unique_ptr<shivya_node, Free> ptr_;
};

}  // namespace shivya
