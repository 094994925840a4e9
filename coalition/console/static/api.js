// The console's only way to the service: fetch with the key as a Bearer header.
// The key lives in sessionStorage (gone when the tab closes) and never in a URL;
// documents are fetched the same way and saved from a Blob.

const KEY = "coalition.key";
const UNREACHABLE = "The service cannot be reached: check the network connection, then try again.";
// the API's own 503 message goes on to tell a till how a retried posting is answered
const DATABASE_AWAY = "The service could not get to its database just now (out of reach, or busy with other work such as closing a period): try again in a moment.";

export const keyStore = {
  get: () => sessionStorage.getItem(KEY),
  set: (key) => sessionStorage.setItem(KEY, key),
  clear: () => sessionStorage.removeItem(KEY),
};

/** An error answer of the API, carrying its JSON `message` (and field errors). */
export class ApiError extends Error {
  constructor(status, body) {
    super(describe(status, body));
    this.status = status;
    this.body = body;
  }
}

function describe(status, body) {
  if (body?.reason === "database_unavailable") return DATABASE_AWAY;
  const message = (body && body.message) || `The service answered ${status}${status >= 500 ? "; try again in a moment" : ""}.`;
  // a rule broken by one field names it under errors with the message itself, and a field
  // validation's message names each field with what is wrong: say each once
  const fields = body && body.errors
    ? flatten(body.errors).filter((line) => !line.endsWith(`: ${message}`) && !message.includes(line))
    : [];
  return fields.length ? `${message}: ${fields.join("; ")}` : message;
}

function flatten(errors, prefix = "") {
  // flask-smorest nests field errors by location: {"json": {"value": ["must be a string such as \"350.00\""]}}
  const out = [];
  for (const [name, value] of Object.entries(errors)) {
    const label = ["json", "query", "querystring", "_schema"].includes(name) ? prefix : prefix ? `${prefix}.${name}` : name;
    if (Array.isArray(value)) out.push(label ? `${label}: ${value.join(" ")}` : value.join(" "));
    else if (value && typeof value === "object") out.push(...flatten(value, label));
  }
  return out;
}

let onUnauthenticated = () => {};

/** Called when the key stops working (401): the console goes back to its login. */
export function whenUnauthenticated(callback) {
  onUnauthenticated = callback;
}

async function request(method, path, { query, body, accept = "application/json", signingIn = false } = {}) {
  const url = new URL(path, window.location.origin);
  for (const [name, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(name, value);
  }
  const headers = { Accept: accept, Authorization: `Bearer ${keyStore.get() || ""}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
      credentials: "omit",
    });
  } catch {
    // fetch rejects only when no answer came: the service or the network is down
    throw new ApiError(0, { message: UNREACHABLE });
  }
  if (!response.ok) {
    let payload = null;
    try {
      payload = await response.json();
    } catch {
      payload = null;
    }
    const error = new ApiError(response.status, payload);
    if (response.status === 401 && !signingIn) onUnauthenticated(error);
    throw error;
  }
  return response;
}

export async function get(path, query) {
  return (await request("GET", path, { query })).json();
}

/** A request that sends a JSON body and reads the JSON answer. */
async function send(method, path, body) {
  return (await request(method, path, { body })).json();
}

export const post = (path, body) => send("POST", path, body);
export const patch = (path, body) => send("PATCH", path, body);
export const put = (path, body) => send("PUT", path, body);

/** DELETE, whose answer (204) has no body. */
export async function remove(path) {
  await request("DELETE", path);
}

/** The role of the key: {role, partner_id, own_partner}; a 401 here is the caller's to show. */
export async function whoami() {
  return (await request("GET", "/console/whoami", { signingIn: true })).json();
}

/** How many of a listing's newest items a page reads, in one request (docs/console.md). */
export const NEWEST = 1000;

/** The newest items of a cursor-paginated listing (transactions, history, statements,
 * changes), newest first, and whether older ones match too. */
export async function newest(path, query = {}) {
  const page = await get(path, { ...query, limit: NEWEST, order: "newest" });
  return { items: page.items, more: Boolean(page.next_cursor) };
}

function filenameOf(disposition, fallback) {
  const match = /filename="?([^";]+)"?/i.exec(disposition || "");
  return match ? match[1] : fallback;
}

/** Fetch a document with the key in the header, then save it from a Blob URL. */
export async function download(path, fallbackName) {
  const response = await request("GET", path, { accept: "*/*" });
  const blob = await response.blob();
  const name = filenameOf(response.headers.get("Content-Disposition"), fallbackName);
  const href = URL.createObjectURL(blob);
  const link = document.createElement("a");
  link.href = href;
  link.download = name;
  link.hidden = true;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(href), 60_000);
  return { name, size: blob.size, type: blob.type };
}
