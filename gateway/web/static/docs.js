"use strict";
// A small renderer of our own OpenAPI document: no CDN, no third-party bundle.
const {el, api, clear} = WA;

function resolve(spec, schema) {
  if (schema && schema.$ref) return spec.components.schemas[schema.$ref.split("/").pop()];
  return schema;
}

function schemaBlock(spec, schema) {
  const names = [];
  const seen = new Set();
  (function walk(s) {
    if (!s || typeof s !== "object") return;
    if (s.$ref) { const n = s.$ref.split("/").pop(); if (!seen.has(n)) { seen.add(n); names.push(n); walk(spec.components.schemas[n]); } return; }
    Object.values(s).forEach(walk);
  })(schema);
  return el("details", {}, el("summary", {}, names[0] || "schema"),
    el("pre", {}, JSON.stringify(resolve(spec, schema), null, 2)),
    names.slice(1).map((n) => el("details", {}, el("summary", {}, n),
      el("pre", {}, JSON.stringify(spec.components.schemas[n], null, 2)))));
}

(async () => {
  const me = await WA.header("/docs");
  if (!me) return;
  const spec = await api("/api/openapi.json");
  const byTag = {};
  for (const [path, ops] of Object.entries(spec.paths)) {
    for (const [method, op] of Object.entries(ops)) {
      (byTag[op.tags[0]] = byTag[op.tags[0]] || []).push([method, path, op]);
    }
  }
  clear(document.getElementById("spec")).append(...Object.entries(byTag).map(([tag, ops]) =>
    el("section", {class: "card"}, el("h2", {}, tag), ops.map(([method, path, op]) =>
      el("div", {class: "operation"},
        el("h3", {}, el("span", {class: "method"}, method.toUpperCase()), " ", path),
        el("p", {}, op.summary),
        op.parameters ? el("table", {}, el("tr", {}, el("th", {}, "parameter"),
          el("th", {}, "in"), el("th", {}, "schema")), op.parameters.map((p) =>
          el("tr", {}, el("td", {}, p.name + (p.required ? " *" : "")), el("td", {}, p.in),
            el("td", {}, JSON.stringify(p.schema))))) : null,
        op.requestBody ? el("div", {}, el("strong", {}, "Body: "),
          schemaBlock(spec, op.requestBody.content["application/json"].schema)) : null,
        el("ul", {}, Object.entries(op.responses).map(([status, r]) => el("li", {},
          status + " " + r.description,
          r.content && r.content["application/json"]
            ? schemaBlock(spec, r.content["application/json"].schema) : null))))))));
})();
