// The AMQP transport's pure parts: URLs as kombu writes them, field tables as py-amqp maps values, and task
// messages as kombu's py-amqp transport sends them, Celery events as they arrive from celeryev. The wire itself is
// tested against a real RabbitMQ (tests/integration/test_amqp.py).
#include <gtest/gtest.h>

#include "broker/amqp/amqp_events.hpp"
#include "broker/amqp/codec.hpp"
#include "broker/amqp/table.hpp"
#include "broker/amqp/topology.hpp"
#include "broker/amqp/url.hpp"
#include "broker/connect.hpp"
#include "util/error.hpp"

namespace ccmulti::broker::amqp {
namespace {

using nlohmann::json;

TEST(AmqpUrl, DefaultsAsKombus) {
    auto url = parse_amqp_url("amqp://");
    EXPECT_EQ(url.host, "localhost");
    EXPECT_EQ(url.port, 5672);
    EXPECT_EQ(url.vhost, "/");
    EXPECT_EQ(url.user, "guest");
    EXPECT_EQ(url.password, "guest");
    EXPECT_FALSE(url.tls);
    EXPECT_EQ(url.heartbeat, 60);
    EXPECT_EQ(parse_amqp_url("amqp://h//").vhost, "/");
    EXPECT_EQ(parse_amqp_url("amqp://h/%2F").vhost, "/");
    EXPECT_EQ(parse_amqp_url("pyamqp://h/prod").vhost, "prod");
}

TEST(AmqpUrl, LoginHostPortAndOptions) {
    auto url = parse_amqp_url(
        "amqps://us%40er:p%3Ass@[::1]:5999/v?heartbeat=10&x-queue-type=quorum&x-max-priority=10"
        "&ssl_cert_reqs=CERT_NONE&login_method=AMQPLAIN");
    EXPECT_TRUE(url.tls);
    EXPECT_FALSE(url.verify);
    EXPECT_EQ(url.user, "us@er");
    EXPECT_EQ(url.password, "p:ss");
    EXPECT_EQ(url.host, "::1");
    EXPECT_EQ(url.port, 5999);
    EXPECT_EQ(url.heartbeat, 10);
    EXPECT_EQ(queue_arguments(url), (json{{"x-queue-type", "quorum"}, {"x-max-priority", 10}}));
    EXPECT_EQ(url.display(), "amqps://us@er:***@[::1]:5999/v");
    EXPECT_EQ(parse_amqp_url("amqps://h").port, 5671);
}

TEST(AmqpUrl, MistakesAreUsageErrorsWithoutThePassword) {
    for (const char* bad : {"amqp://u:secret@h:99999/", "amqp://u:secret@h/?heartbeat=-1", "amqp://u:secret@[::1/",
                            "amqp://u:secret@h/%zz", "amqps://h/?ssl_certfile=/c.pem"}) {
        try {
            parse_amqp_url(bad);
            ADD_FAILURE() << bad << " was accepted";
        } catch (const UsageError& error) {
            EXPECT_EQ(std::string(error.what()).find("secret"), std::string::npos) << error.what();
        }
    }
    EXPECT_NO_THROW(check_broker_url("amqp://guest:guest@localhost//"));
    EXPECT_EQ(display_url("amqp://u:secret@h:1/v"), "amqp://u:***@h:1/v");
}

TEST(AmqpTable, RoundTripsJsonAsPyAmqpTypesIt) {
    json headers = {{"task", "t"},    {"retries", 0}, {"big", 1LL << 40},           {"ratio", 0.5},
                    {"eta", nullptr}, {"flag", true}, {"timelimit", {nullptr, 30}}, {"nested", {{"a", {1, "b"}}}}};
    TableBuilder builder;
    amqp_table_t table = builder.build(headers);
    EXPECT_EQ(table.num_entries, static_cast<int>(headers.size()));
    EXPECT_EQ(to_json(table), headers);
    EXPECT_EQ(builder.build(json::array()).num_entries, 0);
}

TEST(AmqpCodec, TaskMessagesRoundTripWithTheirQueueAndRedelivery) {
    auto task = protocol::make_message("tasks.add", {2, 3}, {{"z", 1}});
    task.queue = "high";
    task.eta = protocol::now();
    task.reply_to = "7c1e0a52-reply";
    Message message = encode_task(task);
    EXPECT_EQ(message.reply_to, "7c1e0a52-reply");
    EXPECT_EQ(json::parse(message.body), json::array({task.args, task.kwargs, task.embed}));
    EXPECT_EQ(message.content_type, "application/json");
    EXPECT_EQ(message.correlation_id, task.id);
    EXPECT_EQ(message.headers["task"], "tasks.add");

    // Through a real table, as the headers travel.
    TableBuilder builder;
    message.headers = to_json(builder.build(message.headers));
    message.redelivered = true;
    Delivery delivery = decode_task(message, "high", "1.7");
    ASSERT_FALSE(delivery.decode_error) << *delivery.decode_error;
    EXPECT_EQ(delivery.tag, "1.7");
    EXPECT_EQ(delivery.message.id, task.id);
    EXPECT_EQ(delivery.message.args, task.args);
    EXPECT_EQ(delivery.message.kwargs, task.kwargs);
    EXPECT_EQ(delivery.message.queue, "high");
    EXPECT_TRUE(delivery.message.redelivered);
    EXPECT_EQ(delivery.message.reply_to, "7c1e0a52-reply");
    ASSERT_TRUE(delivery.message.eta);
}

TEST(AmqpCodec, AnUndecodableMessageKeepsItsIdForTheFailure) {
    Message message;
    message.body = "\x80\x04pickle";
    message.content_type = "application/x-python-serialize";
    message.headers = {{"id", "abc"}, {"task", "tasks.add"}};
    message.reply_to = "client-queue";
    Delivery delivery = decode_task(message, "celery", "1.1");
    ASSERT_TRUE(delivery.decode_error);
    EXPECT_EQ(delivery.message.id, "abc");
    EXPECT_EQ(delivery.message.task, "tasks.add");
    EXPECT_EQ(delivery.message.reply_to, "client-queue");  // its FAILURE goes back to the sender (rpc://)
}

// What Celery's RPCBackend.store_result publishes, and what its ResultConsumer reads back.
TEST(AmqpCodec, ResultsTravelAsCeleryRpcReplies) {
    auto meta = protocol::failure_result("t-1", protocol::ExceptionInfo::of("ValueError", "boom"), "Traceback …");
    meta.reply_to = "client-queue";
    Message message = encode_result(meta);
    EXPECT_EQ(message.correlation_id, "t-1");
    EXPECT_EQ(message.content_type, "application/json");
    EXPECT_EQ(message.content_encoding, "utf-8");
    EXPECT_FALSE(message.persistent);  // result_persistent defaults to False
    json body = json::parse(message.body);
    EXPECT_EQ(body["task_id"], "t-1");
    EXPECT_EQ(body["status"], "FAILURE");
    EXPECT_EQ(body["result"]["exc_type"], "ValueError");
    EXPECT_EQ(body["traceback"], "Traceback …");
    EXPECT_TRUE(body["children"].is_array());
    EXPECT_FALSE(body.contains("reply_to"));  // routing, not part of the result

    auto back = decode_result(message);
    ASSERT_TRUE(back);
    EXPECT_EQ(back->task_id, "t-1");
    EXPECT_EQ(back->status, protocol::TaskState::failure);
    EXPECT_EQ(back->exception()->type, "ValueError");

    // As Celery sends it (five keys), and an old sender's without task_id: the correlation id names the task.
    Message celery;
    celery.correlation_id = "t-2";
    celery.body = R"({"status": "SUCCESS", "result": 4, "traceback": null, "children": []})";
    auto success = decode_result(celery);
    ASSERT_TRUE(success);
    EXPECT_EQ(success->task_id, "t-2");
    EXPECT_EQ(success->result, 4);

    for (const char* junk : {"not json", "[1, 2]", R"({"status": "NOPE"})", R"({"task_id": 3})"}) {
        Message other;
        other.body = junk;
        EXPECT_FALSE(decode_result(other)) << junk;
    }
}

TEST(AmqpEvents, ReceivedBodiesAreOneEventOrATaskBatch) {
    Message one;
    one.content_type = "application/json";
    one.body = R"({"type": "worker-heartbeat", "hostname": "w1@h"})";
    auto events = AmqpEventReceiver::decode(one);
    ASSERT_EQ(events.size(), 1u);
    EXPECT_EQ(events[0]["hostname"], "w1@h");

    Message batch = one;  // task.multi: a list; entries without a type are skipped
    batch.body = R"([{"type": "task-started", "uuid": "a"}, {"uuid": "b"}, {"type": "task-succeeded", "uuid": "a"}])";
    events = AmqpEventReceiver::decode(batch);
    ASSERT_EQ(events.size(), 2u);
    EXPECT_EQ(events[1]["type"], "task-succeeded");

    Message pickled = one;
    pickled.content_type = "application/x-python-serialize";
    EXPECT_TRUE(AmqpEventReceiver::decode(pickled).empty());
    Message garbage = one;
    garbage.body = "not json";
    EXPECT_TRUE(AmqpEventReceiver::decode(garbage).empty());
}

}  // namespace
}  // namespace ccmulti::broker::amqp
