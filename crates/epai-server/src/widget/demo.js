// The widget demo: reads insight-id (or model), token and theme from the page's query string.
"use strict";

const params = new URLSearchParams(window.location.search);
const log = document.getElementById("events");
const note = (message) => {
  const item = document.createElement("li");
  item.textContent = message;
  log.append(item);
};
document.addEventListener("epai:load", () => note("epai:load"));
document.addEventListener("epai:error", (event) => note(`epai:error: ${event.detail.message}`));

for (const widget of document.querySelectorAll("epai-insight")) {
  for (const name of ["insight-id", "model", "token", "token-url"]) {
    if (params.has(name)) widget.setAttribute(name, params.get(name));
  }
}
