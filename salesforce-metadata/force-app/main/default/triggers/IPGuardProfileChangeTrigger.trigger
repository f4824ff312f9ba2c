/**
 * Forwards every IPGuard_Profile_Change__e event to ipguard. Triggers cannot call out, so the
 * events go to the IPGuardEventCallout Queueable. The trigger runs as the user named in the
 * IPGuardProfileChangeTriggerConfig PlatformEventSubscriberConfig (the integration user), who
 * has access to the IPGuard external credential's principal through IPGuard_Integration.
 */
trigger IPGuardProfileChangeTrigger on IPGuard_Profile_Change__e (after insert) {
    IPGuardEventCallout.enqueue(Trigger.new);
}
