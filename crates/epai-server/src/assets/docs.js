// Renders /openapi.json as a readable reference, with text nodes only.
(function () {
  "use strict";
  function el(tag, props, children) {
    var node = document.createElement(tag);
    Object.keys(props || {}).forEach(function (k) { node.setAttribute(k, props[k]); });
    (children || []).forEach(function (c) {
      node.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    });
    return node;
  }
  function resolve(spec, schema) {
    if (schema && schema.$ref) {
      var name = schema.$ref.split("/").pop();
      return { name: name, schema: spec.components.schemas[name] };
    }
    return { name: null, schema: schema };
  }
  function schemaText(spec, schema, depth) {
    var r = resolve(spec, schema);
    var s = r.schema || {};
    if (depth > 3) return r.name || s.type || "object";
    if (s.type === "array" || (Array.isArray(s.type) && s.type.indexOf("array") >= 0)) {
      return "[" + schemaText(spec, s.items, depth + 1) + "]";
    }
    if (s.properties) {
      var fields = Object.keys(s.properties).map(function (k) {
        var required = (s.required || []).indexOf(k) >= 0 ? "" : "?";
        return "  ".repeat(depth + 1) + k + required + ": " + schemaText(spec, s.properties[k], depth + 1);
      });
      return (r.name ? r.name + " " : "") + "{\n" + fields.join("\n") + "\n" + "  ".repeat(depth) + "}";
    }
    if (s.oneOf || s.anyOf) return (s.oneOf || s.anyOf).map(function (x) { return schemaText(spec, x, depth + 1); }).join(" | ");
    return r.name || (Array.isArray(s.type) ? s.type.join(" | ") : s.type) || "any";
  }
  function render(spec) {
    document.getElementById("title").textContent = spec.info.title + " " + spec.info.version;
    document.getElementById("description").textContent = spec.info.description || "";
    var main = document.getElementById("reference");
    var byTag = {};
    Object.keys(spec.paths).forEach(function (path) {
      Object.keys(spec.paths[path]).forEach(function (method) {
        var op = spec.paths[path][method];
        var tag = (op.tags || ["other"])[0];
        (byTag[tag] = byTag[tag] || []).push({ path: path, method: method, op: op });
      });
    });
    (spec.tags || []).map(function (t) { return t.name; }).concat(Object.keys(byTag)).filter(function (t, i, all) {
      return byTag[t] && all.indexOf(t) === i;
    }).forEach(function (tag) {
      main.appendChild(el("h2", { id: tag.replace(/\W+/g, "-") }, [tag]));
      byTag[tag].forEach(function (entry) {
        var op = entry.op;
        var box = el("section", { class: "op" }, [
          el("div", {}, [el("span", { class: "method" }, [entry.method]), el("span", { class: "path" }, [entry.path])]),
          el("p", {}, [op.summary || ""]),
        ]);
        if (op.description) box.appendChild(el("p", { class: "muted" }, [op.description]));
        if (op.security && op.security.length) {
          box.appendChild(el("p", { class: "muted" }, ["Credentials: " + op.security.map(function (s) { return Object.keys(s).join(", "); }).join(" or ")]));
        }
        if (op.parameters && op.parameters.length) {
          var rows = op.parameters.map(function (p) {
            return el("tr", {}, [el("td", {}, [el("code", {}, [p.name])]), el("td", {}, [p.in]), el("td", {}, [p.description || ""])]);
          });
          box.appendChild(el("table", {}, [el("tr", {}, [el("th", {}, ["parameter"]), el("th", {}, ["in"]), el("th", {}, ["meaning"])])].concat(rows)));
        }
        var body = op.requestBody && op.requestBody.content && op.requestBody.content["application/json"];
        if (body) box.appendChild(el("pre", {}, ["request " + schemaText(spec, body.schema, 0)]));
        Object.keys(op.responses || {}).forEach(function (status) {
          var resp = op.responses[status];
          var content = resp.content && (resp.content["application/json"] || resp.content["application/problem+json"]);
          box.appendChild(el("pre", {}, [status + " " + (content ? schemaText(spec, content.schema, 0) : (resp.description || ""))]));
        });
        main.appendChild(box);
      });
    });
  }
  fetch("/openapi.json").then(function (r) { return r.json(); }).then(render).catch(function (e) {
    document.getElementById("description").textContent = "Could not load the API description: " + e;
  });
})();
