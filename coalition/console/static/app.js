// The console shell: login with an API key, navigation by role, hash routing.
// Routes: #/periods, #/settlement/2026-10, #/statements, #/statement/12, #/partners,
// #/partner/aroma, #/rates, #/members, #/members/card-0042, #/transactions, #/kpis, #/keys,
// #/changes, #/settings.

import * as api from "./api.js";
import { h } from "./dom.js";
import * as pages from "./pages.js";

const main = document.getElementById("main");
const nav = document.getElementById("nav");
const notice = document.getElementById("notice");
const whoBox = document.getElementById("who");
const whoText = document.getElementById("who-text");

const NOT_FOR_A_BOUND_KEY = "A key bound to a partner cannot see this page: it reads that partner's statements instead.";
const NOT_FOR_A_PARTNER_KEY = "A partner key cannot see this page.";
const KEYS_NOT_FOR_A_BOUND_KEY = "A key bound to a partner cannot see this page: the keys name every partner's tills and teams.";
const CHANGES_NOT_FOR_A_BOUND_KEY = "A key bound to a partner cannot see this page: the changes name every partner's rates and keys.";

/** Sections, which keys may see each (the API enforces the same rules), and what a key that may not is told. */
const SECTIONS = [
  ["periods", "Periods", () => true, pages.periods],
  ["settlement", "Settlement", (who) => !who.own_partner, pages.settlement, NOT_FOR_A_BOUND_KEY],
  ["statements", "Statements", () => true, pages.statements],
  ["statement", null, () => true, pages.statement],
  ["partners", "Partners", (who) => who.role !== "partner", pages.partners, NOT_FOR_A_PARTNER_KEY],
  ["partner", null, (who) => who.role !== "partner", pages.partner, NOT_FOR_A_PARTNER_KEY],
  ["rates", "Rates", (who) => who.role !== "partner", pages.rates, NOT_FOR_A_PARTNER_KEY],
  ["members", "Members", () => true, pages.members],
  ["transactions", "Transactions", () => true, pages.transactions],
  ["kpis", "KPIs", () => true, pages.kpis],
  ["keys", "Keys", (who) => !who.own_partner, pages.keys, KEYS_NOT_FOR_A_BOUND_KEY],
  ["changes", "Changes", (who) => !who.own_partner, pages.changes, CHANGES_NOT_FOR_A_BOUND_KEY],
  ["settings", "Settings", (who) => who.role !== "partner", pages.settings, NOT_FOR_A_PARTNER_KEY],
];

// a page of one thing is under the navigation's item of the list it is in
const LISTED_IN = { statement: "statements", partner: "partners" };

let who = null;
let renderCount = 0;
let shownPage = null; // the page last shown: a page may keep what it read while it stays
let notifiedAt = 0;

function parseHash() {
  const raw = window.location.hash.replace(/^#\/?/, "");
  const [path, search = ""] = raw.split("?");
  const [name, ...rest] = path.split("/");
  let param = null;
  try {
    param = rest.length ? decodeURIComponent(rest.join("/")) : null;
  } catch {
    param = rest.join("/");
  }
  return { name: name || "periods", param: param || null, query: Object.fromEntries(new URLSearchParams(search)) };
}

function notify(message, kind = "info") {
  notice.textContent = message;
  notice.className = `notice notice-${kind}`;
  notice.setAttribute("role", kind === "error" ? "alert" : "status");
  notice.hidden = false;
  notifiedAt = Date.now();
}

function clearNotice() {
  notice.hidden = true;
  notice.textContent = "";
}

function signOut(message) {
  api.keyStore.clear();
  who = null;
  shownPage = null;
  nav.hidden = true;
  whoBox.hidden = true;
  whoText.textContent = "";
  nav.replaceChildren();
  if (message) notify(message, "error");
  if (window.location.hash !== "#/login") window.location.hash = "#/login";
  else render();
}

api.whenUnauthenticated((error) => signOut(`Signed out: ${error.message}`));

document.getElementById("logout").addEventListener("click", () => {
  clearNotice();
  signOut();
});

function describe(principal) {
  const bound = principal.partner_id ? ` · ${principal.partner_id}` : "";
  return `${principal.role}${bound}`;
}

function showNav(current) {
  const links = SECTIONS.filter(([, label, allowed]) => label && allowed(who)).map(([name, label]) =>
    h("a", { href: `#/${name}`, "aria-current": name === current || LISTED_IN[current] === name ? "page" : null }, label),
  );
  nav.replaceChildren(...links);
  nav.hidden = false;
  whoText.textContent = describe(who);
  whoBox.hidden = false;
}

function loginPage() {
  const message = h("p", { class: "form-error", role: "alert", hidden: true });
  const keyInput = h("input", { id: "api-key", name: "key", type: "password", autocomplete: "off", spellcheck: "false", required: true });
  const form = h(
    "form",
    { class: "panel login", "aria-labelledby": "login-title", novalidate: true },
    h("h1", { id: "login-title", tabindex: "-1" }, "Sign in"),
    h("p", {}, "Paste your API key. It is kept in this browser tab only and forgotten when the tab closes."),
    message,
    h("div", { class: "field" }, h("label", { for: "api-key" }, "API key"), keyInput),
    h("button", { type: "submit" }, "Sign in"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const key = keyInput.value.trim();
    if (!key) {
      message.textContent = "Enter an API key.";
      message.hidden = false;
      return;
    }
    api.keyStore.set(key);
    try {
      who = await api.whoami();
    } catch (error) {
      api.keyStore.clear();
      who = null;
      message.textContent = error.message;
      message.hidden = false;
      keyInput.focus();
      return;
    }
    clearNotice();
    // back to the page asked for: a bookmark opened without a key shows this form there
    if (["", "#/", "#/login"].includes(window.location.hash)) window.location.hash = "#/periods";
    else render();
  });
  return form;
}

function unreachablePage(error) {
  // a request refused as asked (404, 422…) is refused again: no Try again then
  if (error.status >= 400 && error.status < 500 && ![408, 429].includes(error.status)) {
    return [h("h1", { tabindex: "-1" }, error.status === 404 ? "Not found" : "Could not load this page"), h("p", { class: "form-error", role: "alert" }, error.message)];
  }
  const retry = h("button", { type: "button", onclick: () => render() }, "Try again");
  return [h("h1", { tabindex: "-1" }, "Could not load this page"), h("p", { class: "form-error", role: "alert" }, error.message), retry];
}

async function render() {
  const route = parseHash();
  const ticket = ++renderCount;
  if (!api.keyStore.get()) {
    nav.hidden = true;
    whoBox.hidden = true;
    main.replaceChildren(loginPage());
    document.title = "Sign in · Coalition"; // not the page the key last opened
    main.querySelector("input")?.focus();
    return;
  }
  if (route.name === "login") {
    window.location.replace("#/periods");
    return;
  }
  if (!who) {
    try {
      who = await api.whoami();
    } catch (error) {
      if (ticket !== renderCount) return;
      // only a key the service refuses signs out; a service that is down keeps it
      if (error.status === 401) signOut(error.message);
      else main.replaceChildren(...unreachablePage(error));
      return;
    }
  }
  const section = SECTIONS.find(([name]) => name === route.name);
  showNav(route.name);
  main.setAttribute("aria-busy", "true");
  main.replaceChildren(h("p", { class: "loading" }, "Loading…"));
  let content;
  let shown = route.name;
  try {
    if (!section) content = [h("h1", { tabindex: "-1" }, "Not found"), h("p", {}, "There is no such page in the console.")];
    else if (!section[2](who)) content = [h("h1", { tabindex: "-1" }, "Not available"), h("p", {}, section[4])];
    else content = await section[3]({ who, param: route.param, query: route.query, notify, rerender: render, staying: shownPage === route.name });
  } catch (error) {
    // whatever the page asked for failed: the service down or a 503 can be asked again
    content = unreachablePage(error);
    shown = null;
  }
  if (ticket !== renderCount) return;
  shownPage = shown;
  main.replaceChildren(...[content].flat().filter(Boolean));
  main.removeAttribute("aria-busy");
  const title = main.querySelector("h1");
  document.title = title ? `${title.firstChild?.textContent?.trim() || "Console"} · Coalition` : "Coalition console";
  if (document.activeElement === document.body || !main.contains(document.activeElement)) {
    (title || main).focus({ preventScroll: true });
  }
}

window.addEventListener("hashchange", () => {
  if (Date.now() - notifiedAt > 1500) clearNotice();
  render();
});
render();
