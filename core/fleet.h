/* fleet.h: fleet switches: their shared value, read from the memcached fleet. */
#ifndef MG_FLEET_H
#define MG_FLEET_H

struct worker;

/* Send a read of every fleet switch's value from w (worker 0's housekeeping); each reply
 * sets its switch. */
void fleet_poll(struct worker *w);

#endif
