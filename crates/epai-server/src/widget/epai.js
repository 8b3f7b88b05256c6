/* EPAI insight widget: <epai-insight>, window.EPAI and window.EPAIInsightSDK.
   Renders into Shadow DOM with text nodes only; reads with a short-lived embed token, never
   with a secret API key. */
(() => {
  "use strict";
  if (window.customElements.get("epai-insight")) return;

  const script = document.currentScript;
  const scriptOrigin = script && script.src ? new URL(script.src).origin : window.location.origin;
  const POLL_MS = 60000;
  const RENEW_BEFORE_MS = 60000;
  const KEY_REFUSED =
    "EPAI: a secret API key (epai_...) was given to the widget. API keys must never appear in a " +
    "web page: anyone could read it and send events or read your data as you. Mint a short-lived " +
    "embed token on your backend (POST /v1/embed-tokens) and pass that as the token instead.";

  const STYLE = `
:host { display: block; font-family: var(--epai-font-family, system-ui, sans-serif);
  color: var(--epai-text-color, #1a1f24); }
.card { background: var(--epai-background-color, #ffffff); border: 1px solid var(--epai-border-color, #c9d1d9);
  border-radius: var(--epai-border-radius, 8px); padding: 16px; }
:host([theme="dark"]) { color: var(--epai-text-color, #e6edf3); }
:host([theme="dark"]) .card { background: var(--epai-background-color, #1c232b); border-color: var(--epai-border-color, #3a4552); }
:host([compact]) .card { padding: 8px 12px; }
:host([compact]) .description, :host([compact]) .recommendation { display: none; }
h3 { margin: 0 0 8px; font-size: 1.05em; color: var(--epai-primary-color, #0b5cad); }
:host([theme="dark"]) h3 { color: var(--epai-primary-color, #6cb6ff); }
p { margin: 4px 0; }
.confidence { font-size: .9em; opacity: .85; }
.state { font-style: italic; opacity: .85; }
.error { color: #b42318; }
:host([theme="dark"]) .error { color: #ffb3b3; }`;

  let sheet = null;
  const sharedSheet = () => {
    if (!sheet) {
      sheet = new CSSStyleSheet();
      sheet.replaceSync(STYLE);
    }
    return sheet;
  };

  const looksLikeApiKey = (token) => typeof token === "string" && token.startsWith("epai_");

  /** Seconds-since-epoch expiry of a JWT, or null. */
  const expiryOf = (token) => {
    try {
      const payload = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      const exp = JSON.parse(atob(payload)).exp;
      return typeof exp === "number" ? exp : null;
    } catch {
      return null;
    }
  };

  const text = (tag, className, value) => {
    const node = document.createElement(tag);
    if (className) node.className = className;
    node.textContent = value;
    return node;
  };

  class EpaiInsight extends HTMLElement {
    static get observedAttributes() {
      return ["insight-id", "model", "token", "theme", "show-confidence", "show-title", "api-base", "token-url"];
    }

    constructor() {
      super();
      const shadow = this.attachShadow({ mode: "open" });
      this.card = document.createElement("div");
      this.card.className = "card";
      this.card.setAttribute("part", "card");
      this.card.setAttribute("aria-live", "polite");
      // A constructed stylesheet is not inline style, so pages with a strict
      // Content-Security-Policy (no 'unsafe-inline') still style the widget.
      if ("adoptedStyleSheets" in shadow) {
        shadow.adoptedStyleSheets = [sharedSheet()];
      } else {
        const style = document.createElement("style");
        style.textContent = STYLE;
        shadow.append(style);
      }
      shadow.append(this.card);
      this.token = null;
      this.timers = [];
      this.stream = null;
      this.generation = 0;
      this.restartQueued = false;
    }

    connectedCallback() {
      this.restart();
    }

    disconnectedCallback() {
      this.stop();
    }

    attributeChangedCallback(name, previous, current) {
      if (this.isConnected && previous !== current && name !== "theme") this.restart();
    }

    /** Upgrading an element reports each attribute as a change: one start covers them all. */
    restart() {
      if (this.restartQueued) return;
      this.restartQueued = true;
      queueMicrotask(() => {
        this.restartQueued = false;
        if (this.isConnected) this.start();
      });
    }

    get apiBase() {
      return (this.getAttribute("api-base") || scriptOrigin).replace(/\/+$/, "");
    }

    stop() {
      this.generation += 1;
      this.timers.forEach(clearTimeout);
      this.timers = [];
      if (this.stream) this.stream.close();
      this.stream = null;
    }

    later(ms, work) {
      this.timers.push(setTimeout(work, ms));
    }

    async start() {
      this.stop();
      const generation = this.generation;
      this.token = this.getAttribute("token");
      if (looksLikeApiKey(this.token)) {
        console.error(KEY_REFUSED);
        this.fail("This widget was given a secret API key and refused it.");
        return;
      }
      if (!this.getAttribute("insight-id") && !this.getAttribute("model")) {
        this.fail("Set insight-id or model on the widget.");
        return;
      }
      this.showState("Loading insight…");
      if (!this.token && this.getAttribute("token-url")) await this.renew();
      if (generation !== this.generation) return;
      if (!this.token) {
        this.fail("No embed token: set token or token-url on the widget.");
        return;
      }
      this.scheduleRenewal();
      if ((await this.refresh(generation)) && generation === this.generation) this.follow();
    }

    /** Fetches a fresh embed token from the partner's backend; keeps the old one on failure. */
    async renew() {
      const url = this.getAttribute("token-url");
      if (!url) return false;
      try {
        const response = await fetch(url, { credentials: "same-origin" });
        if (!response.ok) return false;
        const type = response.headers.get("content-type") || "";
        const token = type.includes("json") ? (await response.json()).token : (await response.text()).trim();
        if (typeof token !== "string" || !token || looksLikeApiKey(token)) {
          if (looksLikeApiKey(token)) console.error(KEY_REFUSED);
          return false;
        }
        this.token = token;
        return true;
      } catch {
        return false;
      }
    }

    scheduleRenewal() {
      const exp = this.getAttribute("token-url") && expiryOf(this.token);
      if (!exp) return;
      const wait = Math.max(exp * 1000 - Date.now() - RENEW_BEFORE_MS, 5000);
      this.later(wait, async () => {
        if (await this.renew()) this.scheduleRenewal();
      });
    }

    /** Loads and renders the insight unless the widget restarted meanwhile; true when it worked. */
    async refresh(generation = this.generation) {
      const id = this.getAttribute("insight-id");
      const model = this.getAttribute("model");
      const path = id
        ? `/v1/insights/${encodeURIComponent(id)}`
        : `/v1/insights?limit=1&model=${encodeURIComponent(model)}`;
      try {
        let response = await this.get(path);
        if (response.status === 401 && (await this.renew())) response = await this.get(path);
        const body = await response.json().catch(() => null);
        if (generation !== this.generation) return false;
        if (!response.ok) {
          this.fail((body && (body.detail || body.message)) || `The insight could not be loaded (${response.status}).`);
          return false;
        }
        const insight = id ? body : body && body.data && body.data[0];
        if (!insight) {
          this.fail("No insight yet.");
          return false;
        }
        this.show(insight);
        return true;
      } catch {
        if (generation === this.generation) this.fail("The insight could not be loaded.");
        return false;
      }
    }

    get(path) {
      return fetch(this.apiBase + path, { headers: { Authorization: `Bearer ${this.token}` } });
    }

    /** Live updates over SSE where the server offers them; otherwise polling every minute. */
    follow() {
      const poll = () => this.later(POLL_MS, async () => {
        await this.refresh();
        poll();
      });
      if (!("EventSource" in window)) return poll();
      const stream = new EventSource(`${this.apiBase}/v1/insights/stream?access_token=${encodeURIComponent(this.token)}`);
      let opened = false;
      stream.onopen = () => { opened = true; };
      stream.onmessage = () => this.refresh();
      stream.addEventListener("insight", () => this.refresh());
      stream.onerror = () => {
        if (opened) return; // the browser reconnects an established stream by itself
        stream.close();
        if (this.stream === stream) this.stream = null;
        poll();
      };
      this.stream = stream;
    }

    showState(message) {
      this.card.replaceChildren(text("p", "state", message));
      this.setAttribute("aria-busy", "true");
    }

    fail(message) {
      this.removeAttribute("aria-busy");
      this.card.replaceChildren(text("p", "state error", message));
      this.card.setAttribute("data-state", "error");
      this.dispatchEvent(new CustomEvent("epai:error", { bubbles: true, composed: true, detail: { message } }));
    }

    show(insight) {
      const content = insight.content || {};
      const nodes = [];
      if (this.getAttribute("show-title") !== "false") {
        if (content.title != null) nodes.push(text("h3", "title", String(content.title)));
      }
      if (content.description != null) nodes.push(text("p", "description", String(content.description)));
      if (content.recommendation) nodes.push(text("p", "recommendation", String(content.recommendation)));
      if (this.hasAttribute("show-confidence") && typeof content.confidence === "number") {
        nodes.push(text("p", "confidence", `Confidence: ${Math.round(content.confidence * 100)}%`));
      }
      this.removeAttribute("aria-busy");
      this.card.setAttribute("data-state", "ready");
      this.card.replaceChildren(...nodes);
      this.dispatchEvent(new CustomEvent("epai:load", { bubbles: true, composed: true, detail: { insight } }));
    }
  }

  window.customElements.define("epai-insight", EpaiInsight);

  /** Renders a widget into `element` (an element or its id) with camelCase options. */
  const render = (element, options = {}) => {
    const container = typeof element === "string" ? document.getElementById(element) : element;
    if (!container) throw new Error("EPAI: no element to render the insight into");
    const widget = document.createElement("epai-insight");
    const attributes = {
      "insight-id": options.insightId, model: options.model, token: options.token,
      theme: options.theme, "api-base": options.apiBase, "token-url": options.tokenUrl,
    };
    for (const [name, value] of Object.entries(attributes)) {
      if (value != null) widget.setAttribute(name, String(value));
    }
    for (const [name, flag] of [["compact", options.compact], ["show-confidence", options.showConfidence]]) {
      if (flag) widget.setAttribute(name, "");
    }
    if (options.showTitle === false) widget.setAttribute("show-title", "false");
    container.replaceChildren(widget);
    return widget;
  };

  const renderInsight = (options = {}) => render(options.container, options);

  /** The original markup: elements with data-epai-insight-id. */
  const upgradeDataAttributes = () => {
    document.querySelectorAll("[data-epai-insight-id]").forEach((element) => {
      const data = element.dataset;
      if (data.epaiApiKey) {
        console.error(KEY_REFUSED);
        delete element.dataset.epaiApiKey;
      }
      render(element, {
        insightId: data.epaiInsightId, token: data.epaiToken, theme: data.epaiTheme,
        compact: data.epaiCompact === "true", showConfidence: data.epaiShowConfidence === "true",
        showTitle: data.epaiShowTitle !== "false", tokenUrl: data.epaiTokenUrl, apiBase: data.epaiApiBase,
      });
    });
  };

  window.EPAI = Object.assign(window.EPAI || {}, { render, renderInsight });
  window.EPAIInsightSDK = window.EPAI;
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", upgradeDataAttributes);
  } else {
    upgradeDataAttributes();
  }
})();
