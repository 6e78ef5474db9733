// Package catalog holds Liên Thông's domain: members (agencies), their
// information systems with security levels and assessments, the datasets
// those systems publish, access requests and grants, API tokens and the admin
// trail. It also defines the Store interface that every persistence backend
// implements. It imports no other package of this module, so everything else
// can build on it.
package catalog
