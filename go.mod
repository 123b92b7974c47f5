module github.com/bcache-go/bcache

go 1.26

require pgregory.net/rapid v1.3.0
