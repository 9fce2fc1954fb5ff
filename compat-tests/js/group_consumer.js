// A kafkajs consumer-group member for the compat suite: joins GROUP, consumes TOPIC from the
// earliest offset, commits after every message, and prints one line per event on stdout:
//   JOINED <json assignment>   after each rebalance
//   MSG <partition> <offset> <value>
// It runs until SIGTERM, then disconnects (LeaveGroup) and exits 0.
const { Kafka, logLevel, PartitionAssigners } = require('kafkajs');

// kafkajs names its round-robin assignor "RoundRobinAssigner"; Java and Python clients call the
// same strategy "roundrobin". A group needs one protocol all members support, so expose kafkajs's
// implementation (standard consumer-protocol metadata) under the common name.
const roundrobin = (config) => ({ ...PartitionAssigners.roundRobin(config), name: 'roundrobin' });

const [bootstrap, topic, group] = [process.env.BOOTSTRAP, process.env.TOPIC, process.env.GROUP];
const kafka = new Kafka({ clientId: 'sluice-compat-kafkajs', brokers: [bootstrap], logLevel: logLevel.WARN });
const consumer = kafka.consumer({ groupId: group, sessionTimeout: 10000, heartbeatInterval: 500, rebalanceTimeout: 20000,
  partitionAssigners: [roundrobin] });

async function main() {
  await consumer.connect();
  consumer.on(consumer.events.GROUP_JOIN, (e) => {
    console.log('JOINED ' + JSON.stringify(e.payload.memberAssignment));
  });
  await consumer.subscribe({ topic, fromBeginning: true });
  await consumer.run({
    autoCommit: true,
    autoCommitThreshold: 1,
    eachMessage: async ({ partition, message }) => {
      console.log(`MSG ${partition} ${message.offset} ${message.value.toString()}`);
    },
  });
}

let stopping = false;
process.on('SIGTERM', async () => {
  if (stopping) return;
  stopping = true;
  try {
    await consumer.disconnect();
    process.exit(0);
  } catch (e) {
    console.error('disconnect failed', e);
    process.exit(3);
  }
});

main().catch((e) => {
  console.error('kafkajs consumer failed', e);
  process.exit(2);
});
