// Package uitest holds brook's browser tests: they run a real App on a
// broker (the embedded kfake one, or real Kafka when KAFKA_BROKERS is
// set), serve its query handler on loopback, and drive the status page
// (GET /status/ui) in headless Chromium through the DevTools protocol
// (chromedp). It is a module of its own so that the browser driver stays
// out of the library's go.mod, as the bench module keeps goka and
// franz-go out.
//
// Chromium is Debian's package (/usr/bin/chromium, or CHROMIUM naming
// another binary); scripts/test installs it where missing. Without it the
// tests skip, and fail under CI=true.
package uitest
