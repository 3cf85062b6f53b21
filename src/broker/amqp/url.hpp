// AMQP 0-9-1 (RabbitMQ) URLs as Celery and kombu write them:
//   amqp://[user[:password]@]host[:port][/vhost][?options]    also pyamqp:// and librabbitmq:// (the same)
//   amqps://…                                                 TLS (rabbitmq-c's OpenSSL socket), port 5671
// Defaults as kombu's: guest:guest, localhost, 5672, vhost "/" (an empty path; "/%2F" also names "/"). User,
// password and vhost may be percent-encoded. Options (the query):
//   heartbeat=SECONDS        negotiated heartbeat (default 60; 0 turns it off)
//   connect_timeout=SECONDS  for connecting and for each RPC (default 4, as kombu's)
//   ssl_ca_certs=PATH        amqps: the CA bundle to verify the server with (default: the system's, OpenSSL's
//                            default paths)
//   ssl_cert_reqs=CERT_NONE  amqps: do not verify the server's certificate and name (testing only)
//   ssl_certfile=PATH, ssl_keyfile=PATH   amqps: a client certificate
//   x-…=VALUE                queue arguments for the task queues a node or `call` declares (x-queue-type=quorum,
//                            x-max-priority=10, …): integers are sent as integers, anything else as a string
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ccmulti::broker::amqp {

struct AmqpUrl {
    std::string host = "localhost";
    int port = 5672;
    std::string vhost = "/";
    std::string user = "guest", password = "guest";
    bool tls = false;
    bool verify = true;  // amqps: verify the server's certificate and host name
    std::string ca_certs, certfile, keyfile;
    int heartbeat = 60;  // seconds; 0: none
    std::chrono::milliseconds connect_timeout{4000};
    std::vector<std::pair<std::string, std::string>> queue_arguments;  // x-… options, in URL order

    // "localhost:5672" (IPv6 in brackets), for messages
    std::string address() const;
    // The URL with the password masked: "amqp://guest:***@localhost:5672//"
    std::string display() const;
};

// amqp://, amqps://, pyamqp://, librabbitmq://
bool is_amqp_url(std::string_view url);

// Throws UsageError naming the problem and the URL (password masked).
AmqpUrl parse_amqp_url(std::string_view url);

}  // namespace ccmulti::broker::amqp
