package dev.sluice.compat;

import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * Transactions with the Java client. With the broker's finalized {@code transaction.version} at 2
 * the client runs transactions v2 (KIP-890 part 2): no AddPartitionsToTxn/AddOffsetsToTxn, Produce
 * v12+, TxnOffsetCommit v5 and EndTxn v5 bumping the epoch every time; below 2 it runs v1.
 */
final class Transactions {
    private Transactions() {}

    static KafkaProducer<String, String> producer(Main.Args args, String transactionalId) {
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, args.get("bootstrap"));
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        p.put(ProducerConfig.ACKS_CONFIG, "all");
        p.put(ProducerConfig.LINGER_MS_CONFIG, 5);
        if (transactionalId != null) {
            p.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, transactionalId);
            p.put(ProducerConfig.TRANSACTION_TIMEOUT_CONFIG, 60000);
        }
        return new KafkaProducer<>(p);
    }

    static KafkaConsumer<String, String> consumer(Main.Args args, String groupId) {
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, args.get("bootstrap"));
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        p.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        if (groupId != null) {
            p.put(ConsumerConfig.GROUP_ID_CONFIG, groupId);
            p.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, args.get("group-protocol", "classic"));
        }
        return new KafkaConsumer<>(p);
    }

    /**
     * {@code txn-produce --bootstrap B --topic T --txn-id X [--transactions N] [--per-txn M]
     * [--partitions P] [--abort-every K]}: N transactions of M records each ("X-i-j" to partition
     * j % P), every K-th one aborted after its records were flushed to the broker. Reports the
     * committed values per partition, in order.
     */
    static Json produce(Main.Args args) throws Exception {
        String topic = args.get("topic");
        String id = args.get("txn-id");
        int transactions = args.getInt("transactions", 6);
        int perTxn = args.getInt("per-txn", 10);
        int partitions = args.getInt("partitions", 1);
        int abortEvery = args.getInt("abort-every", 3);
        Map<Integer, List<Object>> committed = new HashMap<>();
        int aborted = 0;
        try (KafkaProducer<String, String> producer = producer(args, id)) {
            producer.initTransactions();
            for (int i = 0; i < transactions; i++) {
                producer.beginTransaction();
                List<ProducerRecord<String, String>> sent = new ArrayList<>();
                for (int j = 0; j < perTxn; j++) {
                    ProducerRecord<String, String> r = new ProducerRecord<>(topic, j % partitions, null, id + "-" + i + "-" + j);
                    producer.send(r);
                    sent.add(r);
                }
                producer.flush();
                if (abortEvery > 0 && i % abortEvery == abortEvery - 1) {
                    producer.abortTransaction();
                    aborted++;
                } else {
                    producer.commitTransaction();
                    for (ProducerRecord<String, String> r : sent) {
                        committed.computeIfAbsent(r.partition(), k -> Json.list()).add(r.value());
                    }
                }
            }
        }
        return Json.object().put("committed", committed).put("aborted", aborted);
    }

    /**
     * {@code read-committed --bootstrap B --topic T}: every record below the last stable offset of
     * every partition, read_committed, per partition in offset order.
     */
    static Json readCommitted(Main.Args args) throws Exception {
        String topic = args.get("topic");
        Map<Integer, List<Object>> values = new HashMap<>();
        try (KafkaConsumer<String, String> c = consumer(args, null)) {
            List<TopicPartition> tps = new ArrayList<>();
            for (PartitionInfo p : c.partitionsFor(topic, Duration.ofSeconds(30))) {
                tps.add(new TopicPartition(topic, p.partition()));
            }
            c.assign(tps);
            c.seekToBeginning(tps);
            // Under read_committed the end offsets are the last stable offsets.
            Map<TopicPartition, Long> end = c.endOffsets(tps, Duration.ofSeconds(30));
            long deadline = System.currentTimeMillis() + 60000;
            while (tps.stream().anyMatch(tp -> c.position(tp) < end.get(tp))) {
                if (System.currentTimeMillis() > deadline) {
                    throw new IllegalStateException("did not reach the end offsets " + end);
                }
                for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(200))) {
                    values.computeIfAbsent(r.partition(), k -> Json.list()).add(r.value());
                }
            }
        }
        return Json.object().put("values", values);
    }

    /**
     * {@code consume-transform-produce --bootstrap B --input I --output O --group G --txn-id X
     * --records N [--partitions P] [--abort-first true]}: first writes N records ("in-k") to I
     * (partition k % P, idempotent, not transactional); then a read_committed consumer in group G
     * and a transactional producer copy them to O as "out-in-k", committing the consumed offsets
     * in each transaction with sendOffsetsToTransaction. With --abort-first the first transaction
     * is aborted and the consumer rewinds to the group's committed offsets, so its records and
     * offsets must vanish. Reports what was copied and the group's committed offsets.
     */
    static Json consumeTransformProduce(Main.Args args) throws Exception {
        String input = args.get("input");
        String output = args.get("output");
        String group = args.get("group");
        int records = args.getInt("records", 100);
        int partitions = args.getInt("partitions", 1);
        boolean abortFirst = Boolean.parseBoolean(args.get("abort-first", "false"));
        try (KafkaProducer<String, String> plain = producer(args, null)) {
            for (int k = 0; k < records; k++) {
                plain.send(new ProducerRecord<>(input, k % partitions, null, "in-" + k));
            }
            plain.flush();
        }
        int copied = 0;
        int transactions = 0;
        int aborted = 0;
        Set<TopicPartition> assigned = new HashSet<>();
        Map<TopicPartition, OffsetAndMetadata> finalOffsets = new HashMap<>();
        try (KafkaProducer<String, String> producer = producer(args, args.get("txn-id"));
             KafkaConsumer<String, String> consumer = consumer(args, group)) {
            producer.initTransactions();
            consumer.subscribe(List.of(input));
            long deadline = System.currentTimeMillis() + 90000;
            while (copied < records) {
                if (System.currentTimeMillis() > deadline) {
                    throw new IllegalStateException("copied only " + copied + " of " + records);
                }
                ConsumerRecords<String, String> batch = consumer.poll(Duration.ofMillis(200));
                assigned.addAll(consumer.assignment());
                if (batch.isEmpty()) {
                    continue;
                }
                producer.beginTransaction();
                Map<TopicPartition, OffsetAndMetadata> offsets = new HashMap<>();
                int n = 0;
                for (ConsumerRecord<String, String> r : batch) {
                    producer.send(new ProducerRecord<>(output, r.partition(), null, "out-" + r.value()));
                    offsets.put(new TopicPartition(r.topic(), r.partition()), new OffsetAndMetadata(r.offset() + 1));
                    n++;
                }
                producer.sendOffsetsToTransaction(offsets, consumer.groupMetadata());
                if (abortFirst && transactions == 0) {
                    producer.flush();
                    producer.abortTransaction();
                    aborted++;
                    // Back to what the group has committed (nothing yet: the beginning).
                    Map<TopicPartition, OffsetAndMetadata> committed = consumer.committed(consumer.assignment());
                    for (TopicPartition tp : consumer.assignment()) {
                        OffsetAndMetadata o = committed.get(tp);
                        if (o == null) {
                            consumer.seekToBeginning(List.of(tp));
                        } else {
                            consumer.seek(tp, o.offset());
                        }
                    }
                } else {
                    producer.commitTransaction();
                    copied += n;
                }
                transactions++;
            }
            finalOffsets.putAll(consumer.committed(assigned));
        }
        Map<Integer, Object> offsets = new HashMap<>();
        finalOffsets.forEach((tp, o) -> offsets.put(tp.partition(), o == null ? -1 : o.offset()));
        return Json.object()
            .put("copied", copied)
            .put("transactions", transactions)
            .put("aborted", aborted)
            .put("committed_offsets", offsets);
    }
}
