// A minimal express-session app: the Node side of examples/express's
// interop test, and the shape of the app a service moves from. It reads the
// same environment as the Go example (go run ./examples/express):
//
//   ADDR                     listen address, host:port (default 127.0.0.1:3000)
//   SESSION_SECRET           signs cookies
//   SESSION_SECRET_PREVIOUS  older secrets, comma-separated: verify only
//   REDIS_URL                connect-redis (wins when both are set)
//   DATABASE_URL             connect-pg-simple
//   SESSION_REDIS_PREFIX     default sess:
//   SESSION_COOKIE_NAME      default connect.sid
//   SESSION_TABLE            default session
'use strict';
const express = require('express');
const session = require('express-session');

const env = process.env;
const secrets = [env.SESSION_SECRET]
  .concat((env.SESSION_SECRET_PREVIOUS || '').split(',').map((s) => s.trim()))
  .filter(Boolean);
if (secrets.length === 0) {
  console.error('SESSION_SECRET is required');
  process.exit(1);
}

let store;
if (env.REDIS_URL) {
  const { createClient } = require('redis');
  const RedisStore = require('connect-redis').default;
  const client = createClient({ url: env.REDIS_URL });
  client.on('error', (err) => console.error('redis:', err.message));
  client.connect();
  store = new RedisStore({ client, prefix: env.SESSION_REDIS_PREFIX || 'sess:' });
} else if (env.DATABASE_URL) {
  const PgStore = require('connect-pg-simple')(session);
  store = new PgStore({
    conString: env.DATABASE_URL,
    tableName: env.SESSION_TABLE || 'session',
    pruneSessionInterval: false,
  });
} else {
  console.error('REDIS_URL or DATABASE_URL is required');
  process.exit(1);
}

const app = express();
app.use(session({
  name: env.SESSION_COOKIE_NAME || 'connect.sid',
  secret: secrets,
  store,
  resave: false,
  saveUninitialized: false,
  rolling: true,
  cookie: { maxAge: 24 * 60 * 60 * 1000, httpOnly: true, path: '/', sameSite: 'lax' },
}));
app.use(express.json());

app.post('/api/test-session', (req, res) => {
  for (const [k, v] of Object.entries(req.body || {})) {
    if (k !== 'cookie') req.session[k] = v;
  }
  res.json(req.session);
});
app.get('/api/test-session', (req, res) => res.json(req.session));
app.post('/api/logout', (req, res) => {
  req.session.destroy((err) => (err ? res.status(500).json({ error: String(err) }) : res.json({ ok: true })));
});

const addr = env.ADDR || '127.0.0.1:3000';
const i = addr.lastIndexOf(':');
const host = addr.slice(0, i) || '127.0.0.1';
app.listen(Number(addr.slice(i + 1)), host, () => console.log('listening on ' + addr));
