// Reads a JSON array of ADF documents on stdin and validates each against Atlassian's published
// ADF schema (@atlaskit/adf-schema, json-schema/v1/full.json). Prints a JSON array of
// {"valid": bool, "errors": [...]}, one per document.
// The schema is JSON Schema draft-04, so the draft-04 flavour of ajv validates it.
const Ajv = require("ajv-draft-04");
const schema = require("@atlaskit/adf-schema/dist/json-schema/v1/full.json");

const ajv = new Ajv({ allErrors: true, strict: false });
const validate = ajv.compile(schema);

let input = "";
process.stdin.on("data", (chunk) => (input += chunk));
process.stdin.on("end", () => {
  const docs = JSON.parse(input);
  const results = docs.map((doc) => {
    const valid = validate(doc);
    return { valid, errors: valid ? [] : validate.errors.slice(0, 10) };
  });
  process.stdout.write(JSON.stringify(results));
});
