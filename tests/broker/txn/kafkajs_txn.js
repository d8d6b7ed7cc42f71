// KafkaJS 2.2 transactions against a broker: back-to-back transactions (committed and
// aborted, the next begun as soon as the last ended), offsets sent to a transaction,
// then a read_committed KafkaJS consumer. Prints one JSON line of what it saw.
//   node kafkajs_txn.js BOOTSTRAP TOPIC TRANSACTIONAL_ID GROUP
const { Kafka, logLevel } = require('kafkajs')

async function main () {
  const [bootstrap, topic, transactionalId, group] = process.argv.slice(2)
  const kafka = new Kafka({ clientId: 'kcli-test', brokers: [bootstrap], logLevel: logLevel.ERROR })
  const producer = kafka.producer({ transactionalId, maxInFlightRequests: 1, idempotent: true })
  await producer.connect()
  const committed = []
  for (let i = 0; i < 20; i++) {
    const txn = await producer.transaction()
    await txn.send({ topic, messages: [{ key: `k${i}`, value: `v${i}` }] })
    if (i % 5 === 4) {
      await txn.abort()
    } else {
      if (i === 10) {
        await txn.sendOffsets({ consumerGroupId: group, topics: [{ topic, partitions: [{ partition: 0, offset: '7' }] }] })
      }
      await txn.commit()
      committed.push(`v${i}`)
    }
  }
  await producer.disconnect()

  const consumer = kafka.consumer({ groupId: `${group}-reader`, readUncommitted: false })
  await consumer.connect()
  await consumer.subscribe({ topic, fromBeginning: true })
  const seen = []
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`read ${seen.length} records`)), 30000)
    consumer.run({
      eachMessage: async ({ message }) => {
        seen.push(message.value.toString())
        if (seen.length === committed.length) { clearTimeout(timer); resolve() }
      }
    }).catch(reject)
  })
  await consumer.disconnect()
  const admin = kafka.admin()
  await admin.connect()
  const offsets = await admin.fetchOffsets({ groupId: group, topics: [topic] })
  await admin.disconnect()
  console.log(JSON.stringify({ committed, seen, offsets }))
}

main().catch(error => { console.error(error); process.exit(1) })
