// Runs graphql-http's GraphQL over HTTP server audits against the Enclave at AUDIT_URL
// (e.g. http://127.0.0.1:8080/graphql), prints every result, and exits non-zero if any
// audit is not ok (an error, a warning or a notice). It starts nothing itself.
//
// With AUDIT_TOKEN every request carries it as a bearer token, as a client of the API
// would: the variables audits query `__type`, and introspection needs a token.
import { serverAudits } from 'graphql-http';

const url = process.env.AUDIT_URL;
if (!url) {
  console.error('http-audit: set AUDIT_URL to the /graphql URL of a running Enclave');
  process.exit(2);
}

const token = process.env.AUDIT_TOKEN;
const fetchFn = (input, init = {}) => {
  if (!token) return fetch(input, init);
  const headers = new Headers(init.headers);
  headers.set('authorization', `Bearer ${token}`);
  return fetch(input, { ...init, headers });
};

let failed = 0;
const counts = { ok: 0, notice: 0, warn: 0, error: 0 };
for (const audit of serverAudits({ url, fetchFn })) {
  const result = await audit.fn();
  counts[result.status] += 1;
  let line = `${result.status.padEnd(5)} ${audit.id} ${audit.name}`;
  if (result.status !== 'ok') {
    failed += 1;
    line += `\n      ${result.reason}`;
    if (result.response) {
      const body = await result.response.text().catch(() => '<unreadable body>');
      line += `\n      HTTP ${result.response.status} ${body}`;
    }
  }
  console.log(line);
}
console.log(
  `http-audit: ${counts.ok} ok, ${counts.notice} notice, ${counts.warn} warn, ${counts.error} error`,
);
process.exit(failed === 0 ? 0 : 1);
