// The database and API connectors of the import wizard (docs/connectors.md):
// which fields each type asks for, how they become data_sources.config, the
// credentials (sent once to PUT /api/data-sources/:id/credentials, stored
// encrypted, shown masked afterwards) and the incremental settings; and the
// connectors' error messages turned into what a marketer can do about them.
import { html, Field, ApiError } from '../lib.js';

export const DATABASES = [
  ['postgres', 'PostgreSQL database'], ['redshift', 'Amazon Redshift'], ['mysql', 'MySQL or MariaDB database'],
  ['mssql', 'SQL Server database'], ['custom_database', 'Another database (connection URL)'],
];
export const APIS = [
  ['rest_api', 'A JSON API (REST)'], ['google_analytics', 'Google Analytics 4'], ['meta_pixel', 'Facebook Ads (Meta pixel)'],
  ['bigquery', 'Google BigQuery'], ['snowflake', 'Snowflake'],
];
export const isDatabase = (t) => DATABASES.some(([k]) => k === t);
export const isConnector = (t) => isDatabase(t) || APIS.some(([k]) => k === t);
/** Types whose rows land in imported_data (metrics), not in a table of their own. */
export const isMetrics = (t) => ['google_analytics', 'meta_pixel', 'bigquery', 'snowflake'].includes(t);
/** Types that can sync incrementally (a column or a query parameter). */
export const canIncrement = (t) => isDatabase(t) || t === 'rest_api';

const PORTS = { postgres: 5432, redshift: 5439, mysql: 3306, mssql: 1433 };
// The credential each API type keeps secret: [key, label, multi-line].
const SECRET = {
  rest_api: ['token', 'API token', false],
  google_analytics: ['service_account_json', 'Service account key (the JSON file Google gave you)', true],
  bigquery: ['service_account_json', 'Service account key (the JSON file Google gave you)', true],
  meta_pixel: ['access_token', 'Access token', false],
  snowflake: ['private_key', 'Private key (PEM)', true],
};

/** The fields of a new connector, empty. */
export function blankConnection() {
  return {
    host: '', port: '', database: '', sslmode: 'prefer', url: '', user: '', password: '', secret: '',
    read: 'table', schema: 'public', table: '', query: '', strategy: 'full', incremental: '',
    method: 'GET', records_path: '', pagination: 'none', cursor_path: '', format: '', incremental_param: '',
    auth_header: '', property_id: '', ad_account_id: '', project_id: '', account: '', warehouse: '',
    metrics: '', dimensions: '', date_column: 'date', days: '30', api_base: '',
  };
}

const list = (s) => s.split(',').map((x) => x.trim()).filter(Boolean);
const bad = (message, hint) => { throw new ApiError(400, 'invalid', message, null, hint); };

/** { config, credentials (null: keep the stored ones), schedule } for type from
 * the form's values v. hasStored: the source already has credentials. */
export function connectionConfig(type, v, hasStored) {
  const config = {};
  let credentials = null;
  if (isDatabase(type)) {
    if (type === 'custom_database') {
      if (!/^(postgres|postgresql|mysql):\/\//.test(v.url)) bad('Give the connection URL, e.g. postgres://crm.example.com:5432/crm.', 'The URL starts with postgres:// or mysql://; put the password in the Password field, not in the URL.');
      if (/:\/\/[^/@]*:[^/@]*@/.test(v.url)) bad('The connection URL holds a password.', 'Remove it from the URL and type it in the Password field: that one is stored encrypted.');
      config.url = v.url.trim();
    } else {
      if (!v.host.trim()) bad('Give the database server\'s host name.', 'For example crm.example.com, as your database administrator gave it.');
      if (!v.database.trim()) bad('Give the name of the database.');
      config.host = v.host.trim();
      config.port = Number(v.port) || PORTS[type];
      config.database = v.database.trim();
      if (type === 'postgres' || type === 'redshift') config.sslmode = v.sslmode;
    }
    if (v.read === 'query') {
      if (!/^\s*(select|with)\b/i.test(v.query)) bad('The query must be one SELECT.', 'campaignd only reads: write a single SELECT … FROM …, without a ";".');
      config.query = v.query.trim();
    } else {
      if (!v.table.trim()) bad('Name the table to read.', 'Names are case-sensitive, as the database shows them.');
      if (v.schema.trim()) config.schema = v.schema.trim();
      config.table = v.table.trim();
    }
    if (v.user || v.password) {
      if (!v.user.trim() || !v.password) bad('Give both the user name and the password.', hasStored ? 'To keep the stored login, leave both empty.' : '');
      credentials = { user: v.user.trim(), password: v.password };
    } else if (!hasStored && type !== 'custom_database') bad('Give the user name and password campaignd signs in with.', 'Ask for a login that can only read.');
  } else if (type === 'rest_api') {
    if (!/^https?:\/\/\S+$/.test(v.url.trim())) bad('Give the API\'s address, starting with https://.');
    Object.assign(config, { url: v.url.trim(), method: v.method });
    if (v.records_path.trim()) config.records_path = v.records_path.trim();
    if (v.format) config.format = v.format;
    if (v.auth_header.trim()) config.auth_header = v.auth_header.trim();
    if (v.pagination !== 'none') {
      config.pagination = { type: v.pagination };
      if (v.pagination === 'cursor') {
        if (!v.cursor_path.trim()) bad('Say where the next page\'s cursor is in the answer, e.g. meta.next_cursor.');
        config.pagination.cursor_path = v.cursor_path.trim();
      }
    }
    if (v.incremental_param.trim()) config.incremental_param = v.incremental_param.trim();
  } else {
    const metrics = list(v.metrics);
    if (!metrics.length) bad('Name at least one metric, e.g. sessions.');
    config.metrics = metrics;
    if (list(v.dimensions).length) config[type === 'meta_pixel' ? 'breakdowns' : 'dimensions'] = list(v.dimensions);
    if (type === 'google_analytics') {
      if (!/^\d+$/.test(v.property_id.trim())) bad('Give the GA4 property number (digits only).', 'Google Analytics → Admin → Property settings shows it.');
      config.property_id = v.property_id.trim();
      config.days = Number(v.days) || 30;
    }
    if (type === 'meta_pixel') {
      if (!/^act_\d+$/.test(v.ad_account_id.trim())) bad('Give the ad account id, e.g. act_1234567890.');
      config.ad_account_id = v.ad_account_id.trim();
      config.days = Number(v.days) || 30;
    }
    if (type === 'bigquery' || type === 'snowflake') {
      if (!v.query.trim()) bad('Write the query that returns the metrics per day.');
      config.query = v.query.trim();
      config.date_column = v.date_column.trim() || 'date';
    }
    if (type === 'bigquery') {
      if (!v.project_id.trim()) bad('Give the Google Cloud project id.');
      config.project_id = v.project_id.trim();
    }
    if (type === 'snowflake') {
      if (!v.account.trim() || !v.user.trim()) bad('Give the Snowflake account identifier and user.');
      Object.assign(config, { account: v.account.trim(), user: v.user.trim() });
      if (v.warehouse.trim()) config.warehouse = v.warehouse.trim();
    }
    if (v.api_base.trim()) config.api_base = v.api_base.trim();
  }
  if (SECRET[type] && v.secret.trim()) credentials = { [SECRET[type][0]]: v.secret.trim() };
  else if (SECRET[type] && type !== 'rest_api' && !hasStored) bad(`Give the ${SECRET[type][1].replace(/ \(.*\)$/, '').toLowerCase()}.`);
  const schedule = {};
  if (canIncrement(type) && v.strategy === 'incremental') {
    if (!v.incremental.trim()) bad('Name the column that grows with every new or changed row (e.g. updated_at).', 'Or choose "Read everything" for each sync.');
    if (type === 'rest_api' && !config.incremental_param) bad('Name the query parameter that asks the API for newer records (e.g. updated_since).');
    Object.assign(schedule, { incremental_strategy: 'incremental', incremental_column: v.incremental.trim() });
  } else if (canIncrement(type)) schedule.incremental_strategy = 'full';
  return { config, credentials, schedule };
}

const inp = (v, set, k, attrs = {}) => html`<input id=${`cx-${k}`} value=${v[k]} onInput=${(e) => set(k, e.target.value)} ...${attrs} />`;

/** The connection fields of type: v the values, set(key, value), masked the
 * stored credentials as the server shows them (or null). */
export function ConnectionFields({ type, v, set, masked }) {
  const kept = (k) => (masked && masked[k] ? `stored: ${masked[k]} — leave empty to keep` : '');
  const secret = SECRET[type];
  return html`<fieldset class="connection"><legend>Connection</legend>
    ${isDatabase(type) ? html`
      ${type === 'custom_database'
        ? html`<${Field} label="Connection URL" id="cx-url" hint="postgres://host:5432/db or mysql://host:3306/db, without the password">${inp(v, set, 'url', { required: true, placeholder: 'postgres://crm.example.com:5432/crm' })}</${Field}>`
        : html`<div class="row">
          <${Field} label="Host" id="cx-host">${inp(v, set, 'host', { required: true, placeholder: 'crm.example.com', autocomplete: 'off' })}</${Field}>
          <${Field} label="Port" id="cx-port">${inp(v, set, 'port', { inputmode: 'numeric', pattern: '[0-9]{1,5}', placeholder: String(PORTS[type]) })}</${Field}>
          <${Field} label="Database" id="cx-database">${inp(v, set, 'database', { required: true })}</${Field}>
          ${type === 'postgres' || type === 'redshift' ? html`<${Field} label="Encryption (SSL)" id="cx-sslmode"><select id="cx-sslmode" value=${v.sslmode} onChange=${(e) => set('sslmode', e.target.value)}>${['prefer', 'require', 'verify-full', 'disable'].map((m) => html`<option value=${m}>${m}</option>`)}</select></${Field}>` : null}
        </div>`}
      <div class="row">
        <${Field} label="User" id="cx-user" hint=${kept('user')}>${inp(v, set, 'user', { autocomplete: 'off' })}</${Field}>
        <${Field} label="Password" id="cx-password" hint=${kept('password') || 'Stored encrypted; never shown again.'}>${inp(v, set, 'password', { type: 'password', autocomplete: 'new-password' })}</${Field}>
      </div>
      <fieldset class="choices"><legend>What to read</legend>
        <label class="check"><input type="radio" name="cx-read" value="table" checked=${v.read === 'table'} onChange=${() => set('read', 'table')} /> A table</label>
        <label class="check"><input type="radio" name="cx-read" value="query" checked=${v.read === 'query'} onChange=${() => set('read', 'query')} /> A read-only query</label>
      </fieldset>
      ${v.read === 'table' ? html`<div class="row">
          <${Field} label="Schema" id="cx-schema">${inp(v, set, 'schema')}</${Field}>
          <${Field} label="Table" id="cx-table">${inp(v, set, 'table', { required: true })}</${Field}></div>`
        : html`<${Field} label="Query" id="cx-query" hint="One SELECT; campaignd only reads."><textarea id="cx-query" rows="4" required value=${v.query} onInput=${(e) => set('query', e.target.value)}></textarea></${Field}>`}
    ` : null}
    ${type === 'rest_api' ? html`
      <${Field} label="API address" id="cx-url">${inp(v, set, 'url', { type: 'url', required: true, placeholder: 'https://api.example.com/v2/leads' })}</${Field}>
      <div class="row">
        <${Field} label="Method" id="cx-method"><select id="cx-method" value=${v.method} onChange=${(e) => set('method', e.target.value)}><option>GET</option><option>POST</option></select></${Field}>
        <${Field} label="Records at" id="cx-records_path" hint="Where the records are in the answer, e.g. data.items; empty: the answer is the list">${inp(v, set, 'records_path')}</${Field}>
        <${Field} label="Format" id="cx-format"><select id="cx-format" value=${v.format} onChange=${(e) => set('format', e.target.value)}><option value="">detect</option><option value="json">JSON</option><option value="ndjson">one JSON record per line</option></select></${Field}>
      </div>
      <div class="row">
        <${Field} label="Pages" id="cx-pagination"><select id="cx-pagination" value=${v.pagination} onChange=${(e) => set('pagination', e.target.value)}>
          ${[['none', 'one answer'], ['page', 'page numbers'], ['offset', 'offset and limit'], ['cursor', 'a cursor'], ['link', 'Link: rel="next" header']].map(([k, l]) => html`<option value=${k}>${l}</option>`)}</select></${Field}>
        ${v.pagination === 'cursor' ? html`<${Field} label="Cursor at" id="cx-cursor_path" hint="e.g. meta.next_cursor">${inp(v, set, 'cursor_path')}</${Field}>` : null}
        <${Field} label="Token header" id="cx-auth_header" hint="Empty: Authorization: Bearer <token>">${inp(v, set, 'auth_header', { placeholder: 'Authorization' })}</${Field}>
      </div>` : null}
    ${type === 'google_analytics' ? html`<div class="row"><${Field} label="GA4 property number" id="cx-property_id">${inp(v, set, 'property_id', { required: true, inputmode: 'numeric' })}</${Field}>
      <${Field} label="Days" id="cx-days">${inp(v, set, 'days', { inputmode: 'numeric' })}</${Field}></div>` : null}
    ${type === 'meta_pixel' ? html`<div class="row"><${Field} label="Ad account" id="cx-ad_account_id">${inp(v, set, 'ad_account_id', { required: true, placeholder: 'act_1234567890' })}</${Field}>
      <${Field} label="Days" id="cx-days">${inp(v, set, 'days', { inputmode: 'numeric' })}</${Field}></div>` : null}
    ${type === 'bigquery' ? html`<${Field} label="Project" id="cx-project_id">${inp(v, set, 'project_id', { required: true })}</${Field}>` : null}
    ${type === 'snowflake' ? html`<div class="row"><${Field} label="Account" id="cx-account">${inp(v, set, 'account', { required: true, placeholder: 'xy12345.eu-central-1' })}</${Field}>
      <${Field} label="User" id="cx-user">${inp(v, set, 'user', { required: true })}</${Field}>
      <${Field} label="Warehouse" id="cx-warehouse">${inp(v, set, 'warehouse')}</${Field}></div>` : null}
    ${type === 'bigquery' || type === 'snowflake' ? html`<div class="row"><${Field} label="Query" id="cx-query" hint="One row per day, with the day and the metrics as columns"><textarea id="cx-query" rows="4" required value=${v.query} onInput=${(e) => set('query', e.target.value)}></textarea></${Field}>
      <${Field} label="Day column" id="cx-date_column">${inp(v, set, 'date_column')}</${Field}></div>` : null}
    ${isMetrics(type) ? html`<div class="row">
      <${Field} label="Metrics" id="cx-metrics" hint="Comma-separated, e.g. sessions, conversions">${inp(v, set, 'metrics', { required: true })}</${Field}>
      <${Field} label=${type === 'meta_pixel' ? 'Breakdowns' : 'Dimensions'} id="cx-dimensions" hint="Optional, comma-separated">${inp(v, set, 'dimensions')}</${Field}>
      <${Field} label="API base URL" id="cx-api_base" hint="Only for a proxy; empty: the vendor's">${inp(v, set, 'api_base', { type: 'url' })}</${Field}></div>` : null}
    ${secret ? html`<${Field} label=${secret[1]} id="cx-secret" hint=${kept(secret[0]) || 'Stored encrypted; never shown again.'}>
      ${secret[2] ? html`<textarea id="cx-secret" rows="3" class="secret" autocomplete="off" spellcheck="false" value=${v.secret} onInput=${(e) => set('secret', e.target.value)}></textarea>`
        : inp(v, set, 'secret', { type: 'password', autocomplete: 'new-password' })}</${Field}>` : null}
    ${canIncrement(type) ? html`<div class="row">
      <${Field} label="Each sync reads" id="cx-strategy"><select id="cx-strategy" value=${v.strategy} onChange=${(e) => set('strategy', e.target.value)}><option value="full">everything</option><option value="incremental">only new and changed rows</option></select></${Field}>
      ${v.strategy === 'incremental' ? html`<${Field} label="Incremental column" id="cx-incremental" hint="Grows with every new or changed row, e.g. updated_at">${inp(v, set, 'incremental', { required: true })}</${Field}>` : null}
      ${v.strategy === 'incremental' && type === 'rest_api' ? html`<${Field} label="Query parameter for newer records" id="cx-incremental_param" hint="e.g. updated_since">${inp(v, set, 'incremental_param', { required: true })}</${Field}>` : null}
    </div>` : null}
  </fieldset>`;
}

/** The form values of an existing source (its config; secrets stay empty). */
export function connectionFromSource(src) {
  const c = src.config || {};
  const s = src.schedule_config || {};
  const v = blankConnection();
  for (const k of Object.keys(v)) if (typeof c[k] === 'string' || typeof c[k] === 'number') v[k] = String(c[k]);
  v.user = ''; // in the credentials, masked
  if (src.type === 'snowflake') v.user = c.user || '';
  if (c.query) v.read = 'query';
  if (c.pagination) { v.pagination = c.pagination.type; v.cursor_path = c.pagination.cursor_path || ''; }
  if (Array.isArray(c.metrics)) v.metrics = c.metrics.join(', ');
  if (Array.isArray(c.dimensions || c.breakdowns)) v.dimensions = (c.dimensions || c.breakdowns).join(', ');
  if (s.incremental_strategy === 'incremental') { v.strategy = 'incremental'; v.incremental = s.incremental_column || ''; }
  return v;
}

// The connectors' messages (docs/connectors.md, "Errors and what to do"),
// each with what the person at the screen can do about it.
const ADVICE = [
  [/password authentication failed|access denied|login failed|refused the credentials|reconnect the source|invalid_grant/i, 'The source refused the login or token: check the user name and password (or the token), type them again and test again.'],
  [/private or local network/i, 'The address is inside a private network, which campaignd does not reach. Use the public address, or ask an administrator to allow private networks (IMPORT_ALLOW_PRIVATE_NETWORKS).'],
  [/cannot connect|could not connect|connection refused|could not translate host|name or service not known|timed out|timeout/i, 'campaignd could not reach the server: check the host and port, and that the server accepts connections from campaignd.'],
  [/does not exist|doesn't exist|unknown (table|database)/i, 'Check the names of the database, schema and table: they are case-sensitive, as the database shows them.'],
  [/read-only transaction|one SELECT/i, 'campaignd only reads: write a single SELECT, without ";" or changes.'],
  [/incremental_column/i, 'Name an incremental column that is in the result (see the preview\'s columns).'],
  [/duplicate_key_columns/i, 'Choose a duplicate key (e.g. the id column) so that rows read again replace themselves.'],
  [/records_path/i, 'Say where the records are in the API\'s answer ("Records at"), e.g. data.items.'],
  [/not JSON/i, 'The API does not answer JSON: choose "one JSON record per line" as the format if it sends NDJSON.'],
  [/\b429\b|rate limit/i, 'The API is limiting requests: the sync is retried later; sync less often.'],
  [/redirect|HTTP 30\d/i, 'The address redirects: use the final address of the API.'],
  [/HTTP 404/i, 'The API has nothing at that address: check the API address.'],
  [/no column/i, 'Fix the day column, metrics or dimensions to the names the query returns.'],
];

/** The connectors' advice for a message, or ''. */
export function adviceFor(message) {
  const hit = ADVICE.find(([re]) => re.test(message || ''));
  return hit ? hit[1] : '';
}

/** An /api or sync error with the connector's advice as its hint. */
export function explain(err) {
  if (!(err instanceof ApiError) || err.status !== 400) return err;
  const advice = adviceFor(err.message);
  return advice ? new ApiError(err.status, err.code, err.message, err.details, advice) : err;
}
