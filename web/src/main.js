// The dashboard's shell: session handling (sign-in, refresh, "you were signed
// out"), the app settings (time zone), the navigation and a hash router over
// the page registry in pages/index.js.
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import 'uplot/dist/uPlot.min.css'; // here, not in chart.js: esbuild loads no CSS for lazy chunks
import './style.css';
import { html, supabase, hadStoredSession, roleOf, setTimeZone, setDateFormat, ErrorBox } from './lib.js';
import { SignIn } from './pages/signin.js';
import { pages, matchPage } from './pages/index.js';

function useHash() {
  const [hash, setHash] = useState(window.location.hash || '#/');
  useEffect(() => {
    const on = () => setHash(window.location.hash || '#/');
    window.addEventListener('hashchange', on);
    return () => window.removeEventListener('hashchange', on);
  }, []);
  return hash;
}

function App() {
  const [session, setSession] = useState(undefined); // undefined: not known yet
  const [signedOutReason, setSignedOutReason] = useState(null);
  const [settings, setSettings] = useState(null);
  const [menuOpen, setMenuOpen] = useState(false);
  const hash = useHash();

  useEffect(() => {
    let mine = false; // a sign-out this tab asked for
    window.addEventListener('campaignd:signout', () => { mine = true; });
    supabase.auth.getSession().then(({ data }) => {
      if (!data.session && hadStoredSession) setSignedOutReason('You were signed out: your session ended or was revoked. Sign in again to continue.');
      setSession(data.session);
    });
    const { data: sub } = supabase.auth.onAuthStateChange((event, s) => {
      if (event === 'SIGNED_OUT') {
        if (!mine) setSignedOutReason('You were signed out: your session ended or was revoked. Sign in again to continue.');
        mine = false;
      }
      if (event === 'SIGNED_IN') setSignedOutReason(null);
      setSession(s);
    });
    return () => sub.subscription.unsubscribe();
  }, []);

  useEffect(() => {
    if (!session) return;
    supabase.from('app_settings_public').select('*').maybeSingle().then(({ data }) => {
      if (data?.timezone) setTimeZone(data.timezone);
      if (data?.date_format) setDateFormat(data.date_format);
      setSettings(data || {});
    });
  }, [session?.user?.id]);

  // The menu closes when the route changes (a link elsewhere, the back
  // button) and, for its own links, at the click itself: the page then never
  // shows the new route under a menu that is still open.
  useEffect(() => { setMenuOpen(false); }, [hash]);

  if (session === undefined) return html`<p class="state boot" role="status">Loading…</p>`;
  if (!session) return html`<${SignIn} notice=${signedOutReason} />`;
  if (!settings) return html`<p class="state boot" role="status">Loading settings…</p>`;

  const role = roleOf(session);
  const path = hash.replace(/^#/, '') || '/';
  const found = matchPage(path, role);
  const Page = found?.page.component;

  const signOut = async () => {
    window.dispatchEvent(new Event('campaignd:signout'));
    await supabase.auth.signOut({ scope: 'local' }); // this session only; other devices stay signed in
  };

  return html`<div class="app">
    <a class="skip" href="#main" onClick=${(e) => { e.preventDefault(); document.getElementById('main')?.focus(); }}>Skip to content</a>
    <header class="top">
      <button type="button" class="menu-btn" aria-expanded=${menuOpen} aria-controls="nav" onClick=${() => setMenuOpen(!menuOpen)}>Menu</button>
      <a class="brand" href="#/">campaignd</a>
      <span class="who"><span class="email">${session.user.email}</span> <span class=${`role r-${role}`}>${role}</span></span>
      <button type="button" class="secondary" onClick=${signOut}>Sign out</button>
    </header>
    <div class="body">
      <nav id="nav" class=${menuOpen ? 'nav open' : 'nav'} aria-label="Main" onClick=${(e) => { if (e.target.closest('a')) setMenuOpen(false); }}>
        <ul>${pages.filter((p) => p.nav && p.roles.includes(role)).map((p) => html`
          <li><a href=${`#${p.path}`} aria-current=${found && found.page === p ? 'page' : undefined}>${p.title}</a></li>`)}
        </ul>
      </nav>
      <main id="main" tabindex="-1">
        ${Page ? html`<${Page} role=${role} session=${session} settings=${settings} params=${found.params} />`
               : html`<h1>Not found</h1><${ErrorBox} error=${{ message: 'This page does not exist or your role cannot open it.', advice: 'Use the menu to pick a page.' }} />`}
      </main>
    </div>
  </div>`;
}

render(html`<${App} />`, document.getElementById('app'));
