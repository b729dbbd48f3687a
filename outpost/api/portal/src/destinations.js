// Destinations: the list, the create/edit form built from the type schemas, and one
// destination's page (enable/disable/delete, its metrics chart and its attempts).
import { useState } from "preact/hooks";
import { html, useLoad, Problem, when } from "./ui.js";
import { Field, initial, payload } from "./fields.js";
import { Chart } from "./chart.js";
import { Attempts } from "./activity.js";

const topicsText = (t) => (t === "*" || (Array.isArray(t) && t[0] === "*") ? "*" : (t || []).join(", "));
const topicsValue = (s) => (s.trim() === "*" ? "*" : s.split(",").map((x) => x.trim()).filter(Boolean));

export function Destinations({ api }) {
  const list = useLoad(() => api.get(api.dest()), [api]);
  const rows = list.data ? list.data.models || list.data : [];
  return html`<section>
    <header class="bar"><h2>Destinations</h2><a class="button" href="#/destinations/new">New destination</a></header>
    <${Problem} error=${list.error} />
    ${list.data && !rows.length ? html`<p>No destinations yet.</p>` : null}
    <table class="list" aria-label="destinations">
      <thead><tr><th>Type</th><th>Target</th><th>Topics</th><th>Status</th></tr></thead>
      <tbody>${rows.map(
        (d) => html`<tr data-id=${d.id}>
          <td><a href=${`#/destinations/${d.id}`}>${d.type}</a></td><td>${d.target}</td>
          <td>${topicsText(d.topics)}</td>
          <td>${d.disabled_at ? "disabled" : "enabled"}</td></tr>`
      )}</tbody>
    </table></section>`;
}

export function DestinationForm({ api, types, stored, done }) {
  const [type, setType] = useState(stored ? stored.type : "");
  const schema = types.find((t) => t.type === type);
  const [config, setConfig] = useState(() => (schema ? initial(schema.config_fields, stored && stored.config) : {}));
  const [creds, setCreds] = useState(() => (schema ? initial(schema.credential_fields, stored && stored.credentials) : {}));
  const [topics, setTopics] = useState(stored ? topicsText(stored.topics) : "*");
  const [error, setError] = useState(null);
  const choose = (t) => {
    const s = types.find((x) => x.type === t);
    setType(t);
    setConfig(s ? initial(s.config_fields) : {});
    setCreds(s ? initial(s.credential_fields) : {});
  };
  const submit = async (e) => {
    e.preventDefault();
    const body = {
      topics: topicsValue(topics),
      config: payload(schema.config_fields, config, stored && stored.config),
      credentials: payload(schema.credential_fields, creds, stored && stored.credentials),
    };
    try {
      const d = stored
        ? await api.patch(api.dest(stored.id), body)
        : await api.post(api.dest(), { type, ...body });
      done(d);
    } catch (err) {
      setError(err);
    }
  };
  const fields = (group, list, values, set, shown) =>
    list.map((f) => html`<${Field} key=${f.key} group=${group} field=${f} value=${values[f.key]} editing=${!!stored}
      shown=${shown && shown[f.key]} set=${(v) => set((old) => ({ ...old, [f.key]: v }))} />`);
  return html`<form class="dest-form" onSubmit=${submit}>
    ${stored ? null : html`<div class="field"><label for="f-type">Type</label>
      <select id="f-type" name="type" required value=${type} onChange=${(e) => choose(e.target.value)}>
        <option value="">Choose a type</option>
        ${types.map((t) => html`<option value=${t.type}>${t.label}</option>`)}
      </select></div>`}
    ${schema ? html`
      ${schema.description ? html`<p class="hint">${schema.description}</p>` : null}
      <div class="field"><label for="f-topics">Topics</label>
        <input id="f-topics" name="topics" value=${topics} onInput=${(e) => setTopics(e.target.value)} />
        <small>Comma-separated topics, or * for every topic.</small></div>
      <fieldset><legend>Configuration</legend>${fields("config", schema.config_fields, config, setConfig)}</fieldset>
      ${schema.credential_fields.length ? html`<fieldset><legend>Credentials</legend>
        ${fields("credentials", schema.credential_fields, creds, setCreds, stored && stored.credentials)}</fieldset>` : null}
      <${Problem} error=${error} />
      <button type="submit">${stored ? "Save" : "Create destination"}</button>` : null}
  </form>`;
}

export function NewDestination({ api, types }) {
  return html`<section><h2>New destination</h2>
    <${DestinationForm} api=${api} types=${types} done=${(d) => (location.hash = `#/destinations/${d.id}`)} /></section>`;
}

export function Destination({ api, types, id }) {
  const dest = useLoad(() => api.get(api.dest(id)), [api, id]);
  const [editing, setEditing] = useState(false);
  const [error, setError] = useState(null);
  const act = (fn) => async () => {
    try {
      setError(null);
      await fn();
      dest.reload();
    } catch (err) {
      setError(err);
    }
  };
  const d = dest.data;
  if (!d) return html`<section><${Problem} error=${dest.error} />${dest.loading ? html`<p>Loading…</p>` : null}</section>`;
  const enabled = !d.disabled_at;
  const remove = async () => {
    if (!confirm("Delete this destination?")) return;
    await api.del(api.dest(id));
    location.hash = "#/destinations";
  };
  return html`<section class="destination" data-id=${d.id}>
    <header class="bar"><h2>${d.type} · ${d.target}</h2>
      <span class=${"badge " + (enabled ? "success" : "failed")} id="dest-status">${enabled ? "enabled" : "disabled"}</span></header>
    <p class="hint">id ${d.id} · topics ${topicsText(d.topics)} · created ${when(d.created_at)}</p>
    <div class="actions">
      <button onClick=${act(() => api.put(api.dest(id) + (enabled ? "/disable" : "/enable")))}>${enabled ? "Disable" : "Enable"}</button>
      <button onClick=${() => setEditing(!editing)}>${editing ? "Cancel edit" : "Edit"}</button>
      <button class="danger" onClick=${act(remove)}>Delete</button>
    </div>
    <${Problem} error=${error} />
    ${editing ? html`<${DestinationForm} api=${api} types=${types} stored=${d}
      done=${() => { setEditing(false); dest.reload(); }} />` : null}
    <h3>Attempts, last 24 hours</h3>
    <${Chart} api=${api} destinationId=${id} />
    <h3>Attempts</h3>
    <${Attempts} api=${api} destinationId=${id} />
  </section>`;
}
