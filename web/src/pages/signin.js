import { useState } from 'preact/hooks';
import { html, supabase, fromSupabase, ErrorBox, Field } from '../lib.js';

export function SignIn({ notice }) {
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);

  const submit = async (e) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    const { error: err } = await supabase.auth.signInWithPassword({ email: email.trim(), password });
    setBusy(false);
    if (err) {
      const ae = fromSupabase(err);
      if (err.status === 400) ae.message = 'Wrong e-mail or password.';
      setError(ae);
    }
  };

  return html`<main class="signin" id="main">
    <form class="card" onSubmit=${submit} aria-labelledby="signin-title">
      <h1 id="signin-title">Sign in to campaignd</h1>
      ${notice ? html`<p class="notice" role="alert">${notice}</p>` : null}
      <${Field} label="E-mail" id="email"><input id="email" type="email" autocomplete="username" required value=${email} onInput=${(e) => setEmail(e.target.value)} /></${Field}>
      <${Field} label="Password" id="password"><input id="password" type="password" autocomplete="current-password" required value=${password} onInput=${(e) => setPassword(e.target.value)} /></${Field}>
      <${ErrorBox} error=${error} />
      <button type="submit" disabled=${busy}>${busy ? 'Signing in…' : 'Sign in'}</button>
      <p class="muted">Accounts are created by an admin.</p>
    </form>
  </main>`;
}
