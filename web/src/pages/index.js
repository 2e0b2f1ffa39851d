// The page registry: each engine of campaignd adds its page here (path, title,
// the roles that see it in the menu, and the component). Paths are hash routes;
// ":name" segments become params.
// Each page is its own chunk, loaded when first opened, so the first page
// (sign-in) carries only the shell and supabase-js.
import { lazy } from '../lazy.js';

const Overview = lazy(() => import('./overview.js'), 'Overview');
const Campaigns = lazy(() => import('./campaigns.js'), 'Campaigns');
const CampaignPage = lazy(() => import('./campaigns.js'), 'CampaignPage');
const Templates = lazy(() => import('./templates.js'), 'Templates');
const TemplatePage = lazy(() => import('./templates.js'), 'TemplatePage');
const Contacts = lazy(() => import('./contacts.js'), 'Contacts');
const Segments = lazy(() => import('./segments.js'), 'Segments');
const SegmentPage = lazy(() => import('./segments.js'), 'SegmentPage');
const Reports = lazy(() => import('./reports.js'), 'Reports');
const Admin = lazy(() => import('./admin.js'), 'Admin');
const DataSources = lazy(() => import('./sources.js'), 'DataSources');
const DataSourcePage = lazy(() => import('./sources.js'), 'DataSourcePage');
const ImportWizard = lazy(() => import('./wizard.js'), 'ImportWizard');

const ALL = ['admin', 'user', 'viewer'];
const WRITERS = ['admin', 'user'];

export const pages = [
  { path: '/', title: 'Overview', nav: true, roles: ALL, component: Overview },
  { path: '/campaigns', title: 'Campaigns', nav: true, roles: ALL, component: Campaigns },
  { path: '/campaigns/:id', title: 'Campaign', roles: ALL, component: CampaignPage },
  { path: '/templates', title: 'Templates', nav: true, roles: WRITERS, component: Templates },
  { path: '/templates/:id', title: 'Template', roles: WRITERS, component: TemplatePage },
  { path: '/contacts', title: 'Contacts', nav: true, roles: WRITERS, component: Contacts },
  { path: '/segments', title: 'Segments', nav: true, roles: WRITERS, component: Segments },
  { path: '/segments/:id', title: 'Segment', roles: WRITERS, component: SegmentPage },
  { path: '/reports', title: 'Reports', nav: true, roles: ALL, component: Reports },
  // viewers see the sources, their history and the wizard, read-only (migration 045)
  { path: '/data-sources', title: 'Data sources', nav: true, roles: ALL, component: DataSources },
  { path: '/data-sources/import', title: 'Import data', roles: ALL, component: ImportWizard },
  { path: '/data-sources/:id', title: 'Data source', roles: ALL, component: DataSourcePage },
  { path: '/admin', title: 'Admin', nav: true, roles: ['admin'], component: Admin },
];

export function matchPage(path, role) {
  const segs = path.split('?')[0].split('/').filter(Boolean);
  for (const page of pages) {
    if (!page.roles.includes(role)) continue;
    const ps = page.path.split('/').filter(Boolean);
    if (ps.length !== segs.length) continue;
    const params = {};
    let ok = true;
    ps.forEach((p, i) => {
      if (p.startsWith(':')) params[p.slice(1)] = decodeURIComponent(segs[i]);
      else if (p !== segs[i]) ok = false;
    });
    if (ok) return { page, params };
  }
  return null;
}
