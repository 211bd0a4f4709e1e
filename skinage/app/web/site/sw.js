// The service worker: every file of the site in one cache, so the page works offline once loaded.
// `skinage app` writes the list and the version (a hash of the files, also in version.json) below; a
// new build is a new cache, and the old one is deleted when the new worker takes over.
const VERSION = '__VERSION__';
const FILES = __FILES__;
const CACHE = `skinage-${VERSION}`;

// what the page fetched it has put in the cache already: only the rest is downloaded
async function precache() {
  const cache = await caches.open(CACHE);
  const missing = [];
  for (const f of FILES) {
    const url = new URL(f, self.registration.scope);
    if (!(await cache.match(url))) missing.push(url);
  }
  await cache.addAll(missing);
}

self.addEventListener('install', (event) => {
  event.waitUntil(precache().then(() => self.skipWaiting()));
});

self.addEventListener('activate', (event) => {
  event.waitUntil(caches.keys()
    .then((keys) => Promise.all(keys.filter((k) => k.startsWith('skinage-') && k !== CACHE).map((k) => caches.delete(k))))
    .then(() => self.clients.claim()));
});

self.addEventListener('fetch', (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== 'GET' || url.origin !== self.location.origin) return; // nothing else is ours
  event.respondWith(caches.open(CACHE).then(async (cache) => {
    const hit = await cache.match(event.request, { ignoreSearch: true });
    return hit || fetch(event.request);
  }));
});
