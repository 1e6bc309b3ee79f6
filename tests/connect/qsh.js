// Atlassian's reference query string hash (npm atlassian-jwt, pinned in package.json) for the
// requests on stdin ([{method, url, base}]): prints [{canonical, qsh}] in the same order.
// tests/test_connect_qsh.py compares this with our Rust (shared/src/connect/qsh.rs).
'use strict';
const jwt = require('atlassian-jwt');

let input = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk) => { input += chunk; });
process.stdin.on('end', () => {
  const out = JSON.parse(input).map(({ method, url, base }) => {
    const request = jwt.fromMethodAndUrl(method, url);
    return {
      canonical: jwt.createCanonicalRequest(request, false, base || ''),
      qsh: jwt.createQueryStringHash(request, false, base || ''),
    };
  });
  process.stdout.write(JSON.stringify(out) + '\n');
});
