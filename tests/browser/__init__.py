"""Browser tests: the console in headless Chromium, driven by Playwright."""
