// Conclave: smoke test for the local Pulsar standalone broker.
//
// Run by `deploy/pulsar/pulsar.sh smoke [TOPIC]` (compiled into the jar cache,
// run as: java -cp "<classes>:<pulsar lib>/*" PulsarSmoke SERVICE_URL TOPIC [COUNT]),
// using the Java client that comes with the broker's own jars. It subscribes with a
// Key_Shared subscription, produces keyed messages over the binary protocol,
// receives and acknowledges every one, then removes its subscription.
import java.nio.charset.StandardCharsets;
import java.util.HashSet;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import org.apache.pulsar.client.api.Consumer;
import org.apache.pulsar.client.api.Message;
import org.apache.pulsar.client.api.MessageId;
import org.apache.pulsar.client.api.Producer;
import org.apache.pulsar.client.api.PulsarClient;
import org.apache.pulsar.client.api.SubscriptionInitialPosition;
import org.apache.pulsar.client.api.SubscriptionType;

public class PulsarSmoke {
    public static void main(String[] args) throws Exception {
        String serviceUrl = args.length > 0 ? args[0] : "pulsar://127.0.0.1:6650";
        String topic = args.length > 1 ? args[1] : "persistent://conclave/ops/actions";
        int count = args.length > 2 ? Integer.parseInt(args[2]) : 10;
        String subscription = "conclave-smoke-" + ProcessHandle.current().pid();
        long t0 = System.nanoTime();

        try (PulsarClient client = PulsarClient.builder()
                .serviceUrl(serviceUrl)
                .operationTimeout(30, TimeUnit.SECONDS)
                .connectionTimeout(10, TimeUnit.SECONDS)
                .build()) {
            Consumer<byte[]> consumer = client.newConsumer()
                    .topic(topic)
                    .subscriptionName(subscription)
                    .subscriptionType(SubscriptionType.Key_Shared)
                    .subscriptionInitialPosition(SubscriptionInitialPosition.Latest)
                    .enableBatchIndexAcknowledgment(true)
                    .subscribe();
            Set<String> sent = new HashSet<>();
            try (Producer<byte[]> producer = client.newProducer().topic(topic).create()) {
                for (int i = 0; i < count; i++) {
                    String body = "conclave smoke " + subscription + " #" + i;
                    MessageId id = producer.newMessage()
                            .key("agent-" + (i % 3))
                            .property("smoke", "true")
                            .value(body.getBytes(StandardCharsets.UTF_8))
                            .send();
                    sent.add(body);
                    if (i == 0) {
                        System.out.println("smoke: produced first message id " + id);
                    }
                }
            }
            int received = 0;
            while (!sent.isEmpty()) {
                Message<byte[]> msg = consumer.receive(30, TimeUnit.SECONDS);
                if (msg == null) {
                    throw new IllegalStateException("timed out; " + sent.size() + " message(s) not received");
                }
                String body = new String(msg.getValue(), StandardCharsets.UTF_8);
                if (sent.remove(body)) {
                    received++;
                }
                consumer.acknowledge(msg);
            }
            consumer.unsubscribe();
            long ms = (System.nanoTime() - t0) / 1_000_000;
            System.out.printf("smoke: OK, produced %d and consumed+acked %d (Key_Shared) on %s via %s in %d ms%n",
                    count, received, topic, serviceUrl, ms);
        }
    }
}
