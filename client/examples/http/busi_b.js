// Bank B of the HTTP quick start: a branch service for DTM's HTTP protocol on Node.js's own
// http module (no packages to install). The coordinator POSTs the step's payload (JSON) to
//   /api/TransIn             give `amount` to the account (a saga's action)
//   /api/TransInCompensate   take it back (its compensation)
// with ?gid=..&trans_type=..&branch_id=..&op=.. in the URL, and reads the answer as DTM does:
// 200 {"dtm_result":"SUCCESS"}, 409 {"dtm_result":"FAILURE"} (refuse: roll back), 425
// {"dtm_result":"ONGOING"} (not yet: ask again). Each call is printed.
//
//   node client/examples/http/busi_b.js --port 8082
// A payload with "result": "FAILURE" makes TransIn refuse; with "sleep_first_call": N the
// first TransIn of a gid answers only after N seconds (time to kill the coordinator).
'use strict';
const http = require('http');

const portArg = process.argv.indexOf('--port');
const port = portArg > 0 ? Number(process.argv[portArg + 1]) : 8082;
const slept = new Set();

function reply(res, status, answer) {
  const data = JSON.stringify(answer);
  res.writeHead(status, {'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(data)});
  res.end(data);
}

const server = http.createServer((req, res) => {
  let body = '';
  req.setEncoding('utf8');
  req.on('data', (chunk) => { body += chunk; });
  req.on('end', () => {
    const url = new URL(req.url, 'http://localhost');
    const q = url.searchParams;
    const gid = q.get('gid');
    console.log(`bank B: ${url.pathname.padEnd(22)} gid=${gid} branch_id=${q.get('branch_id')} ` +
                `op=${q.get('op')} body=${body}`);
    let payload;
    try {
      payload = JSON.parse(body || '{}');
    } catch (e) {
      return reply(res, 400, {message: 'the body is not JSON'});
    }
    if (url.pathname === '/api/TransIn') {
      if (payload.result === 'FAILURE') {
        return reply(res, 409, {dtm_result: 'FAILURE', message: 'account closed'});
      }
      if (payload.sleep_first_call && !slept.has(gid)) {
        slept.add(gid);
        setTimeout(() => reply(res, 200, {dtm_result: 'SUCCESS'}), payload.sleep_first_call * 1000);
        return;
      }
      return reply(res, 200, {dtm_result: 'SUCCESS'});
    }
    if (url.pathname === '/api/TransInCompensate') return reply(res, 200, {dtm_result: 'SUCCESS'});
    return reply(res, 404, {message: `no such route: ${url.pathname}`});
  });
});

server.listen(port, '127.0.0.1', () => {
  console.log(`bank B listening on port ${server.address().port}`);
});
