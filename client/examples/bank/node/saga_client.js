#!/usr/bin/env node
// A saga-submitting client in Node.js: moves money from an account of bank A to an account
// of bank B through dtmd, with stubs loaded at run time from the same .proto files
// (@grpc/grpc-js, @grpc/proto-loader). Prints the outcome and the balances as JSON.
//
//   node saga_client.js --dtm 127.0.0.1:36790 --bank_a 127.0.0.1:50061 \
//       --bank_b 127.0.0.1:50062 --from alice --to bob --amount 3000
'use strict';

const path = require('path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const root = path.resolve(__dirname, '../../../..');
const args = {
  dtm: '127.0.0.1:36790', bank_a: '127.0.0.1:50061', bank_b: '127.0.0.1:50062',
  from: 'alice', to: 'bob', amount: '3000',
};
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i += 2) {
  const key = argv[i].replace(/^--/, '');
  if (!(key in args) || i + 1 >= argv.length) {
    console.error(`saga_client.js: unknown or incomplete flag "${argv[i]}"; flags: ` +
                  Object.keys(args).map((k) => '--' + k).join(' '));
    process.exit(1);
  }
  args[key] = argv[i + 1];
}
const amount = Number(args.amount);
if (!Number.isInteger(amount) || amount <= 0) {
  console.error(`saga_client.js: --amount "${args.amount}" must be a positive integer`);
  process.exit(1);
}

const loaded = protoLoader.loadSync(
    [path.join(root, 'proto/dtm/v1/coordinator.proto'),
     path.join(root, 'client/examples/bank/proto/bank/v1/bank.proto')],
    {keepCase: true, longs: Number, enums: String, defaults: true,
     includeDirs: [path.join(root, 'proto'), path.join(root, 'client/examples/bank/proto')]});
const proto = grpc.loadPackageDefinition(loaded);
const bankMethods = loaded['bank.v1.Bank'];
const creds = grpc.credentials.createInsecure();
const dtm = new proto.dtm.v1.Coordinator(args.dtm, creds);
const call = (client, method, req) => new Promise((resolve, reject) => {
  client[method](req, {deadline: Date.now() + 30000}, (err, res) => (err ? reject(err) : resolve(res)));
});

// A step's payload is the serialized TransferRequest the coordinator passes on untouched.
const leg = (user) => bankMethods.TransOut.requestSerialize({user_id: user, amount: amount});
const target = (bank, method) => `${bank}/bank.v1.Bank/${method}`;

async function balances() {
  const out = {};
  for (const bank of [args.bank_a, args.bank_b]) {
    const client = new proto.bank.v1.Bank(bank, creds);
    const r = await call(client, 'Balances', {});
    for (const a of r.accounts) out[a.user_id] = a.balance;
    client.close();
  }
  return out;
}

async function main() {
  const before = await balances();
  const gid = (await call(dtm, 'NewGid', {})).gid;
  const submitted = await call(dtm, 'Submit', {
    gid: gid,
    trans_type: 'SAGA',
    steps: [
      {action: target(args.bank_a, 'TransOut'), compensate: target(args.bank_a, 'TransOutCompensate'),
       payload: leg(args.from)},
      {action: target(args.bank_b, 'TransIn'), compensate: target(args.bank_b, 'TransInCompensate'),
       payload: leg(args.to)},
    ],
    options: {wait_result: true, retry_interval: {seconds: 0, nanos: 200000000}},
  });
  // wait_result answers after the first round; the coordinator's final word comes from Query.
  let txn = (await call(dtm, 'Query', {gid: gid})).transaction;
  const deadline = Date.now() + 30000;
  while (txn.status !== 'SUCCEEDED' && txn.status !== 'FAILED' && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    txn = (await call(dtm, 'Query', {gid: gid})).transaction;
  }
  const after = await balances();
  console.log(JSON.stringify({gid: gid, submitted: submitted.status, status: txn.status,
                              reason: txn.rollback_reason, before: before, after: after}));
  dtm.close();
  process.exit(txn.status === 'SUCCEEDED' ? 0 : 2);
}

main().catch((err) => {
  console.error('saga_client.js:', err.message || err);
  process.exit(1);
});
