"use strict";
// An avatar that cannot load (WeChat's image host unreachable, an old address) shows
// the neutral placeholder the bot serves instead of a broken image. The image may have
// failed before this script ran, so a finished image with no pixels counts too.
for (const img of document.querySelectorAll("img[data-fallback]")) {
  const useFallback = () => {
    img.src = img.dataset.fallback;
  };
  if (img.complete && img.naturalWidth === 0) {
    useFallback();
  } else {
    img.addEventListener("error", useFallback, { once: true });
  }
}
