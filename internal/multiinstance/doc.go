// Package multiinstance holds the tests of several Gatehouse processes
// sharing one PostgreSQL database: tokens, revocations, use limits and auth
// method changes seen across instances, restarts under load, and database
// outages. The tests build cmd/gatehouse and run it; they need
// GATEHOUSE_TEST_POSTGRES_URL (see docs/several-instances.md).
package multiinstance
