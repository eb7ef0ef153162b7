// Small enhancements; every page works without them.

// The demo's running counter arrives as "N tokens · X tok/s"; say "1 token" for the first one.
document.addEventListener("htmx:sseMessage", (event) => {
  const live = event.target;
  if (live.matches && live.matches(".demo-live") && /^1 tokens\b/.test(live.textContent)) {
    live.textContent = live.textContent.replace(/^1 tokens\b/, "1 token");
  }
});
