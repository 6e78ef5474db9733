module github.com/lienthong/lienthong

go 1.26.8
