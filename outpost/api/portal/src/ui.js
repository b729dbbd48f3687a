// Small shared pieces: html (htm bound to preact), a loader hook, an error line, a time.
import { html } from "htm/preact";
import { useEffect, useState, useCallback } from "preact/hooks";

export { html };

export function useLoad(fn, deps) {
  const [state, set] = useState({ data: null, error: null, loading: true });
  const reload = useCallback(() => {
    set((s) => ({ ...s, loading: true }));
    fn().then(
      (data) => set({ data, error: null, loading: false }),
      (error) => set({ data: null, error, loading: false })
    );
  }, deps);
  useEffect(reload, [reload]);
  return { ...state, reload };
}

export function Problem({ error }) {
  return error ? html`<p class="error" role="alert">${error.message}</p>` : null;
}

export function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "";
}

export function Status({ value }) {
  return html`<span class=${"badge " + value}>${value}</span>`;
}
