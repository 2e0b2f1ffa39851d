// A component loaded on first use (a dynamic import, one chunk per page).
import { useEffect, useState } from 'preact/hooks';
import { html, ErrorBox } from './lib.js';

export function lazy(load, name) {
  let Comp = null;
  let pending = null;
  return function Lazy(props) {
    const [, setReady] = useState(0);
    const [error, setError] = useState(null);
    useEffect(() => {
      if (Comp) return;
      pending = pending || load().then((m) => { Comp = m[name]; });
      pending.then(() => setReady(1), () => {
        pending = null; // a later visit tries again
        setError({ message: 'This page could not be loaded.', advice: 'The dashboard may have been updated: reload the page.' });
      });
    }, []);
    if (Comp) return html`<${Comp} ...${props} />`;
    if (error) return html`<${ErrorBox} error=${error} retry=${() => window.location.reload()} />`;
    return html`<p class="state" role="status"><span class="spinner" aria-hidden="true"></span> Loading…</p>`;
  };
}
