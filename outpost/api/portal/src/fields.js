// One form field built from a destination type's schema (GET /destination-types): text,
// checkbox, select, key_value_map. Sensitive fields are password inputs; on edit they are
// left empty (the API shows them masked) and sent only when the tenant types a new value.
import { html } from "./ui.js";

function KeyValues({ field, value, set }) {
  const rows = Object.entries(value || {});
  const put = (next) => set(Object.fromEntries(next));
  return html`<div class="kv">
    ${rows.map(
      ([k, v], i) => html`<div class="kv-row">
        <input aria-label=${`${field.label} name`} placeholder=${field.key_placeholder || "key"}
          value=${k} onInput=${(e) => put(rows.map((r, j) => (j === i ? [e.target.value, r[1]] : r)))} />
        <input aria-label=${`${field.label} value`} placeholder=${field.value_placeholder || "value"}
          value=${v} onInput=${(e) => put(rows.map((r, j) => (j === i ? [r[0], e.target.value] : r)))} />
        <button type="button" onClick=${() => put(rows.filter((_, j) => j !== i))}>Remove</button>
      </div>`
    )}
    <button type="button" onClick=${() => put([...rows, ["", ""]])}>Add</button>
  </div>`;
}

export function Field({ group, field, value, set, editing, shown }) {
  const id = `f-${group}-${field.key}`;
  const keep = field.sensitive && editing && shown; // a stored secret: empty keeps it
  const label = html`<label for=${id}>${field.label}${field.required && !keep ? " *" : ""}</label>`;
  const help = field.description ? html`<small>${field.description}</small>` : null;
  if (field.type === "checkbox") {
    return html`<div class="field check">
      <input id=${id} name=${field.key} type="checkbox" checked=${!!value}
        onChange=${(e) => set(e.target.checked)} />${label}${help}</div>`;
  }
  if (field.type === "select") {
    return html`<div class="field">${label}
      <select id=${id} name=${field.key} required=${field.required} value=${value ?? ""}
        onChange=${(e) => set(e.target.value)}>
        <option value="">—</option>
        ${(field.options || []).map((o) => html`<option value=${o.value}>${o.label}</option>`)}
      </select>${help}</div>`;
  }
  if (field.type === "key_value_map") {
    return html`<div class="field">${label}<${KeyValues} field=${field} value=${value} set=${set} />${help}</div>`;
  }
  const secret = field.sensitive;
  return html`<div class="field">${label}
    <input id=${id} name=${field.key} type=${secret ? "password" : "text"} autocomplete="off"
      required=${field.required && !keep} pattern=${field.pattern} minlength=${field.minlength}
      maxlength=${field.maxlength} value=${value ?? ""}
      placeholder=${keep ? `${shown} (unchanged)` : field.default || ""}
      onInput=${(e) => set(e.target.value)} />${help}</div>`;
}

// the values a form starts from: the destination's (secrets left out) or the defaults
export function initial(fields, stored) {
  const out = {};
  for (const f of fields) {
    const v = stored ? stored[f.key] : undefined;
    if (f.sensitive && stored) continue;
    out[f.key] = v ?? (f.type === "checkbox" ? false : "");
  }
  return out;
}

// what to send: typed values; on edit a cleared field is null (merge patch deletes it)
export function payload(fields, values, stored) {
  const out = {};
  for (const f of fields) {
    let v = values[f.key];
    if (f.type === "key_value_map") v = Object.fromEntries(Object.entries(v || {}).filter(([k]) => k));
    const empty = v === "" || v == null || v === false || (typeof v === "object" && !Object.keys(v).length);
    if (!empty) out[f.key] = v;
    else if (stored && stored[f.key] != null && !f.sensitive) out[f.key] = null;
  }
  return out;
}
