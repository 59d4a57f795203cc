// Package docs holds Sluice's user documentation (the Markdown files in
// this directory) and no code: its test checks that every relative link in
// README.md and docs/*.md leads to a file, and every #anchor to a heading,
// so `make test` fails on a broken link.
package docs
